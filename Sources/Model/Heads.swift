import Kernels

/// How the vision and text-branch predictions are combined (CLIP-IT §Stage 2 and its
/// ablations).
public enum FusionMode: String, NamedChoice, Equatable {
    /// Late fusion (the method): z = fusion([h_v(v) ; g(h_d(v))]), fusion: Linear(2C→C).
    case late
    /// Ablation "no fusion": z = h_v(v). The projection h_d still exists (it feeds the
    /// distillation term), the text-branch head g and the fusion layer do not.
    case visionOnly
    /// Ablation "early fusion": z = early_fusion([v ; h_d(v)]), one Linear(E+D→C) head on
    /// the concatenated features. We fuse [v ; t̂] rather than t̂ alone so that the single
    /// head sees the same information the late-fusion model sees through its two branches.
    case early
}

/// Sizes and variants of the CLIP-IT heads.
public struct HeadsConfig: Sendable, Equatable, Codable {
    /// E: width of the vision feature v.
    public var featureWidth: Int
    /// D: width of the text embedding t (and of the projection t̂ = h_d(v)).
    public var textWidth: Int
    /// C: number of classes.
    public var classes: Int
    /// h_d as Linear(E→E)–LeakyReLU–Linear(E→D) instead of one Linear(E→D).
    public var twoLayerProjection: Bool
    public var fusion: FusionMode
    /// Negative slope of the LeakyReLUs inside h_d and g (0.1 in the reference).
    public var leakySlope: Float
    /// Buffers for `trainOnRealText` (late fusion only; `clipit-fusion`).
    public var realTextBranch: Bool

    public init(featureWidth: Int, textWidth: Int, classes: Int, twoLayerProjection: Bool = false,
                fusion: FusionMode = .late, leakySlope: Float = 0.1, realTextBranch: Bool = false) {
        precondition(featureWidth > 0 && textWidth > 0 && classes > 0,
                     "HeadsConfig: widths and class count must be positive")
        self.featureWidth = featureWidth
        self.textWidth = textWidth
        self.classes = classes
        self.twoLayerProjection = twoLayerProjection
        self.fusion = fusion
        self.leakySlope = leakySlope
        self.realTextBranch = realTextBranch
    }
}

/// The trainable CLIP-IT heads on top of the vision feature v (B, E):
///
///     a  = h_v(v)                                  vision_head     Linear(E→C)
///     t̂  = h_d(v)                                  projection      Linear(E→D)
///                                                  (or projection.0 Linear(E→E), LeakyReLU,
///                                                      projection.2 Linear(E→D))
///     b  = g(t̂)                                    text_head.0 Linear(D→D), LeakyReLU,
///                                                  text_head.2 Linear(D→C)
///     z  = fusion([a ; b])                         fusion          Linear(2C→C)
///
/// (`FusionMode` lists the ablation variants.) Every head is trainable with PyTorch's
/// default Linear initialisation. The concatenation [a ; b] is never copied: h_v and g
/// write their outputs into the two column halves of one (B, 2C) buffer through
/// `Linear.forward(ldy:)`.
///
/// Use: `forward(features:batch:)`, read `logits` and `projected`; let the losses *add*
/// ∂L/∂t̂ into `projectedGrad` (zeroed by forward); then `backward(dLogits:dFeatures:)`
/// adds ∂L/∂v into `dFeatures` and the head gradients into the store.
public final class CLIPITHeads {
    public let config: HeadsConfig
    public let visionHead: Linear?
    /// h_d: one layer, or `projection.0` and `projection.2`.
    public let projection: [Linear]
    public let textHead0: Linear?
    public let textHead2: Linear?
    /// Late fusion Linear(2C→C) or early fusion Linear(E+D→C); nil for `.visionOnly`.
    public let fusion: Linear?

    public private(set) var batch = 0
    private let arena: ActivationArena
    // Activations (first `batch` rows used; empty where the configuration has no such layer).
    private let projectionHidden: ActivationBuffer      // (B, E) pre-activation (two-layer h_d)
    private let projectionHiddenAct: ActivationBuffer   // (B, E) LeakyReLU output
    /// t̂ = h_d(v), (B, D).
    public let projected: ActivationBuffer
    private let textHidden: ActivationBuffer            // (B, D) pre-activation (late fusion)
    private let textHiddenAct: ActivationBuffer         // (B, D)
    private let concatenated: ActivationBuffer          // (B, 2C) late, (B, E+D) early
    /// z, (B, C).
    public let logits: ActivationBuffer
    // Gradients.
    private let dProjectionHidden: ActivationBuffer     // (B, E)
    private let dProjectionHiddenAct: ActivationBuffer  // (B, E)
    /// ∂L/∂t̂, (B, D): zeroed by `forward`, losses add into it before `backward`.
    public let projectedGrad: ActivationBuffer
    private let dTextHidden: ActivationBuffer           // (B, D)
    private let dTextHiddenAct: ActivationBuffer        // (B, D)
    private let dConcatenated: ActivationBuffer         // like `concatenated`
    // The real-text path of late fusion (`trainOnRealText`; empty unless `realTextBranch`).
    private let realTextHidden: ActivationBuffer        // (B, D)
    private let realTextHiddenAct: ActivationBuffer     // (B, D)
    private let realConcatenated: ActivationBuffer      // (B, 2C) [a ; g(t)]
    private let realLogits: ActivationBuffer            // (B, C)
    private let dRealConcatenated: ActivationBuffer     // (B, 2C); its a-half waits for `backward`
    private let dRealTextHidden: ActivationBuffer       // (B, D)
    private let dRealTextHiddenAct: ActivationBuffer    // (B, D)
    /// Whether `backward` still has to add the real-text path's ∂L/∂a.
    private var realTextGradientPending = false
    private var realBatch = 0

    /// Declares the heads' parameters in `store` under `prefix` (`heads.` by default).
    public init(_ config: HeadsConfig, prefix: String = "heads.", store: ParameterStore) {
        self.config = config
        let e = config.featureWidth, d = config.textWidth, c = config.classes
        func linear(_ name: String, _ i: Int, _ o: Int) -> Linear {
            Linear(prefix + name, in: i, out: o, region: .trainable, store: store)
        }
        visionHead = config.fusion == .early ? nil : linear("vision_head", e, c)
        projection = config.twoLayerProjection
            ? [linear("projection.0", e, e), linear("projection.2", e, d)]
            : [linear("projection", e, d)]
        if config.fusion == .late {
            textHead0 = linear("text_head.0", d, d)
            textHead2 = linear("text_head.2", d, c)
        } else {
            textHead0 = nil
            textHead2 = nil
        }
        switch config.fusion {
        case .late: fusion = linear("fusion", 2 * c, c)
        case .early: fusion = linear("early_fusion", e + d, c)
        case .visionOnly: fusion = nil
        }
        let arena = store.activations
        self.arena = arena
        func buffer(_ name: String, width: Int) -> ActivationBuffer {
            arena.buffer(prefix + name) { $0.samples * width }
        }
        let twoLayer = config.twoLayerProjection ? e : 0, late = config.fusion == .late ? d : 0
        let w = config.fusion == .early ? e + d : config.fusion == .late ? 2 * c : 0
        projectionHidden = buffer("projection_hidden", width: twoLayer)
        projectionHiddenAct = buffer("projection_hidden_act", width: twoLayer)
        dProjectionHidden = buffer("d_projection_hidden", width: twoLayer)
        dProjectionHiddenAct = buffer("d_projection_hidden_act", width: twoLayer)
        projected = buffer("projected", width: d)
        projectedGrad = buffer("projected_grad", width: d)
        textHidden = buffer("text_hidden", width: late)
        textHiddenAct = buffer("text_hidden_act", width: late)
        dTextHidden = buffer("d_text_hidden", width: late)
        dTextHiddenAct = buffer("d_text_hidden_act", width: late)
        concatenated = buffer("concatenated", width: w)
        dConcatenated = buffer("d_concatenated", width: w)
        logits = buffer("logits", width: c)
        let real = config.realTextBranch && config.fusion == .late
        realTextHidden = buffer("real_text_hidden", width: real ? d : 0)
        realTextHiddenAct = buffer("real_text_hidden_act", width: real ? d : 0)
        realConcatenated = buffer("real_concatenated", width: real ? 2 * c : 0)
        realLogits = buffer("real_logits", width: real ? c : 0)
        dRealConcatenated = buffer("d_real_concatenated", width: real ? 2 * c : 0)
        dRealTextHidden = buffer("d_real_text_hidden", width: real ? d : 0)
        dRealTextHiddenAct = buffer("d_real_text_hidden_act", width: real ? d : 0)
    }

    /// Every Linear of the heads, in declaration order.
    public var layers: [Linear] {
        [visionHead].compactMap { $0 } + projection + [textHead0, textHead2, fusion].compactMap { $0 }
    }

    private var concatenatedWidth: Int {
        config.fusion == .early ? config.featureWidth + config.textWidth : 2 * config.classes
    }

    /// Computes t̂ (`projected`) and z (`logits`) from v (batch, E), and zeroes
    /// `projectedGrad`. The input must stay valid until `backward`.
    public func forward(features v: UnsafePointer<Float>, batch: Int) {
        arena.reserve(samples: batch)
        self.batch = batch
        let e = config.featureWidth, d = config.textWidth, c = config.classes
        let slope = config.leakySlope
        // t̂ = h_d(v)  (B, D)
        if config.twoLayerProjection {
            projection[0].forward(v, projectionHidden.data, rows: batch)              // (B, E)
            leakyReLUForward(projectionHidden.data, projectionHiddenAct.data,
                             count: batch * e, slope: slope)
            projection[1].forward(projectionHiddenAct.data, projected.data, rows: batch)
        } else {
            projection[0].forward(v, projected.data, rows: batch)
        }
        projectedGrad.data.update(repeating: 0, count: batch * d)

        switch config.fusion {
        case .late:
            let w = 2 * c
            // [a ; b] written straight into the two halves of `concatenated` (B, 2C).
            visionHead!.forward(v, concatenated.data, rows: batch, ldy: w)
            textHead0!.forward(projected.data, textHidden.data, rows: batch)          // (B, D)
            leakyReLUForward(textHidden.data, textHiddenAct.data, count: batch * d, slope: slope)
            textHead2!.forward(textHiddenAct.data, concatenated.data + c, rows: batch, ldy: w)
            fusion!.forward(concatenated.data, logits.data, rows: batch)              // (B, C)
        case .visionOnly:
            visionHead!.forward(v, logits.data, rows: batch)
        case .early:
            let w = e + d
            copyColumns(v, ld: e, into: concatenated.data, ld: w, rows: batch, cols: e)
            copyColumns(projected.data, ld: d, into: concatenated.data + e, ld: w,
                        rows: batch, cols: d)
            fusion!.forward(concatenated.data, logits.data, rows: batch)
        }
    }

    /// The fusion on real text (CLIP-IT.md decision 8, `clipit-fusion`; Hoffman et al.
    /// 2016): z_r = F([h_v(v) ; g(t)]) (B, C) on the paired reports' embeddings t, a
    /// constant (sg(t)). Call it (and `backwardOnRealText`) before `forward`: both paths run
    /// the same layers, and each layer keeps the input of its last forward for its backward.
    public func forwardOnRealText(features v: UnsafePointer<Float>, text t: UnsafePointer<Float>,
                                  batch: Int) -> UnsafePointer<Float> {
        precondition(config.realTextBranch && config.fusion == .late, "CLIPITHeads: no real-text branch configured")
        arena.reserve(samples: batch)
        realBatch = batch
        let d = config.textWidth, c = config.classes, w = 2 * c
        visionHead!.forward(v, realConcatenated.data, rows: batch, ldy: w)                   // a
        textHead0!.forward(t, realTextHidden.data, rows: batch)
        leakyReLUForward(realTextHidden.data, realTextHiddenAct.data, count: batch * d, slope: config.leakySlope)
        textHead2!.forward(realTextHiddenAct.data, realConcatenated.data + c, rows: batch, ldy: w)   // g(t)
        fusion!.forward(realConcatenated.data, realLogits.data, rows: batch)                 // z_r
        return UnsafePointer(realLogits.data)
    }

    /// Given ∂L/∂z_r (B, C) of the last `forwardOnRealText`, adds the gradients of g and F
    /// into the store (none into t); ∂L/∂a waits for the next `backward`, which adds it to
    /// h_v's (h_v saw the same v).
    public func backwardOnRealText(dLogits: UnsafePointer<Float>) {
        let batch = realBatch, d = config.textWidth, c = config.classes, w = 2 * c
        dRealConcatenated.data.update(repeating: 0, count: batch * w)
        fusion!.backward(dLogits, dx: dRealConcatenated.data)
        dRealTextHiddenAct.data.update(repeating: 0, count: batch * d)
        textHead2!.backward(dRealConcatenated.data + c, dx: dRealTextHiddenAct.data, lddy: w)
        dRealTextHidden.data.update(repeating: 0, count: batch * d)
        leakyReLUBackward(realTextHidden.data, dRealTextHiddenAct.data, dRealTextHidden.data, count: batch * d,
                          slope: config.leakySlope)
        textHead0!.backward(dRealTextHidden.data, dx: nil)                                     // sg(t)
        realTextGradientPending = true
    }

    /// The two late-fusion inputs of the last forward, a = h_v(v) and b = g(t̂), each
    /// (batch, C) row-major (copies, for analysis and tests; nil unless `.late`).
    public var branchLogits: (vision: [Float], textBranch: [Float])? {
        guard config.fusion == .late else { return nil }
        let c = config.classes
        var a = [Float](repeating: 0, count: batch * c), b = a
        for r in 0..<batch {
            for j in 0..<c {
                a[r * c + j] = concatenated.data[r * 2 * c + j]
                b[r * c + j] = concatenated.data[r * 2 * c + c + j]
            }
        }
        return (a, b)
    }

    /// Given ∂L/∂z (batch, C) and the ∂L/∂t̂ accumulated in `projectedGrad`, adds the head
    /// parameter gradients into the store and ∂L/∂v into `dFeatures` (batch, E), if non-nil.
    public func backward(dLogits: UnsafePointer<Float>, dFeatures: UnsafeMutablePointer<Float>?) {
        let e = config.featureWidth, d = config.textWidth, c = config.classes
        let slope = config.leakySlope
        let dt = projectedGrad.data                                                   // (B, D)
        switch config.fusion {
        case .late:
            let w = 2 * c
            dConcatenated.data.update(repeating: 0, count: batch * w)
            fusion!.backward(dLogits, dx: dConcatenated.data)                         // (B, 2C)
            if realTextGradientPending {   // ∂L/∂a of the real-text path: h_v saw the same v
                precondition(realBatch == batch, "CLIPITHeads: the real-text path ran on another batch")
                addColumns(dRealConcatenated.data, ld: w, into: dConcatenated.data, ld: w, rows: batch, cols: c)
                realTextGradientPending = false
            }
            visionHead!.backward(dConcatenated.data, dx: dFeatures, lddy: w)
            dTextHiddenAct.data.update(repeating: 0, count: batch * d)
            textHead2!.backward(dConcatenated.data + c, dx: dTextHiddenAct.data, lddy: w)
            dTextHidden.data.update(repeating: 0, count: batch * d)
            leakyReLUBackward(textHidden.data, dTextHiddenAct.data, dTextHidden.data,
                              count: batch * d, slope: slope)
            textHead0!.backward(dTextHidden.data, dx: dt)                             // dt̂ +=
        case .visionOnly:
            visionHead!.backward(dLogits, dx: dFeatures)
        case .early:
            let w = e + d
            dConcatenated.data.update(repeating: 0, count: batch * w)
            fusion!.backward(dLogits, dx: dConcatenated.data)                         // (B, E+D)
            if let dFeatures {
                addColumns(dConcatenated.data, ld: w, into: dFeatures, ld: e, rows: batch, cols: e)
            }
            addColumns(dConcatenated.data + e, ld: w, into: dt, ld: d, rows: batch, cols: d)
        }
        // Through h_d: dv += ∂L/∂t̂ · ∂t̂/∂v.
        if config.twoLayerProjection {
            dProjectionHiddenAct.data.update(repeating: 0, count: batch * e)
            projection[1].backward(dt, dx: dProjectionHiddenAct.data)
            dProjectionHidden.data.update(repeating: 0, count: batch * e)
            leakyReLUBackward(projectionHidden.data, dProjectionHiddenAct.data,
                              dProjectionHidden.data, count: batch * e, slope: slope)
            projection[0].backward(dProjectionHidden.data, dx: dFeatures)
        } else {
            projection[0].backward(dt, dx: dFeatures)
        }
    }
}

/// A linear classification head Linear(E→C) on a feature (the unimodal and text-only
/// classifiers), with its logits buffer.
public final class LinearHead {
    public let layer: Linear
    public let logits: ActivationBuffer   // (B, C)
    private let arena: ActivationArena

    public init(_ name: String, in inFeatures: Int, classes: Int, store: ParameterStore) {
        layer = Linear(name, in: inFeatures, out: classes, region: .trainable, store: store)
        arena = store.activations
        logits = arena.buffer(name + ".logits") { $0.samples * classes }
    }

    /// logits (batch, C) ← x (batch, E) Wᵀ + b. `x` must stay valid until `backward`.
    public func forward(_ x: UnsafePointer<Float>, batch: Int) {
        arena.reserve(samples: batch)
        layer.forward(x, logits.data, rows: batch)
    }

    /// Adds the head's parameter gradients and ∂L/∂x (if `dx` is non-nil).
    public func backward(dLogits: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?) {
        layer.backward(dLogits, dx: dx)
    }
}

/// dst[r, 0..<cols] = src[r, 0..<cols] for `rows` rows of two strided matrices.
@inline(__always)
func copyColumns(_ src: UnsafePointer<Float>, ld lds: Int, into dst: UnsafeMutablePointer<Float>,
                 ld ldd: Int, rows: Int, cols: Int) {
    for r in 0..<rows { (dst + r * ldd).update(from: src + r * lds, count: cols) }
}

/// dst[r, 0..<cols] += src[r, 0..<cols] for `rows` rows of two strided matrices.
@inline(__always)
func addColumns(_ src: UnsafePointer<Float>, ld lds: Int, into dst: UnsafeMutablePointer<Float>,
                ld ldd: Int, rows: Int, cols: Int) {
    for r in 0..<rows {
        let s = src + r * lds, t = dst + r * ldd
        for j in 0..<cols { t[j] += s[j] }
    }
}
