import Kernels

/// Whether the distillation term's gradient reaches the text tower.
public enum TextGradient: String, NamedChoice, Equatable {
    /// ∂/∂t flows into the text tower's trainable parameters (the reference's "mutual"
    /// alignment, the default).
    case mutual
    /// Stop-gradient on t (ablation): the text tower is a fixed target. Its parameters are
    /// declared frozen whatever `textTraining` says, so no optimiser state or weight decay
    /// touches them.
    case stopped
}

/// The losses of one step, each already divided by the global batch size (so the sum of
/// the values over data-parallel ranks is the global batch mean).
public struct LossBreakdown: Sendable, Equatable {
    /// ce + λ·distill.
    public var total: Float
    /// Cross-entropy on the fused logits.
    public var ce: Float
    /// mean(1 − cos(t̂, t)) (before λ); 0 without a distillation term.
    public var distill: Float

    public init(total: Float, ce: Float, distill: Float) {
        self.total = total
        self.ce = ce
        self.distill = distill
    }
}

/// Everything that defines a CLIP-IT model (CLIP-IT.md, Stage 2, and its ablations).
public struct CLIPITConfig: Codable, Equatable, Sendable {
    public var vision: VisionConfig
    public var text: TextConfig
    /// LoRA targets / full fine-tuning / frozen, per tower.
    public var visionTraining: TowerTraining
    public var textTraining: TowerTraining
    /// C, the number of classes.
    public var classes: Int
    /// h_d as Linear(E→E)–LeakyReLU(0.1)–Linear(E→D).
    public var twoLayerProjection: Bool
    /// Late fusion (the method), vision logits only, or early fusion.
    public var fusion: FusionMode
    /// Whether the loss has the distillation term λ·(1 − cos(t̂, t)). Without it the text
    /// tower is not built and no tokens are needed.
    public var distillation: Bool
    /// λ, the distillation weight (1 in the reference).
    public var distillationWeight: Float
    public var textGradient: TextGradient
    /// Cross-entropy on logits (the method) or the reference's double softmax.
    public var crossEntropy: CrossEntropyMode

    public init(vision: VisionConfig, text: TextConfig, visionTraining: TowerTraining,
                textTraining: TowerTraining, classes: Int, twoLayerProjection: Bool = false,
                fusion: FusionMode = .late, distillation: Bool = true, distillationWeight: Float = 1,
                textGradient: TextGradient = .mutual, crossEntropy: CrossEntropyMode = .logits) {
        self.vision = vision
        self.text = text
        self.visionTraining = visionTraining
        self.textTraining = textTraining
        self.classes = classes
        self.twoLayerProjection = twoLayerProjection
        self.fusion = fusion
        self.distillation = distillation
        self.distillationWeight = distillationWeight
        self.textGradient = textGradient
        self.crossEntropy = crossEntropy
    }

    /// The heads' sizes: E from the vision tower, D from the text tower.
    public var heads: HeadsConfig {
        HeadsConfig(featureWidth: vision.outputDim, textWidth: text.outputDim, classes: classes,
                    twoLayerProjection: twoLayerProjection, fusion: fusion)
    }
}

/// CLIP-IT: a vision tower g_v with heads, distilled towards a text tower g_t's embedding
/// of each image's paired report.
///
///     v = g_v(I)            t̂ = h_d(v)            z = fusion([h_v(v) ; g(t̂)])
///     t = g_t(T)            L = (1/N) Σ_i [ CE(z_i, y_i) + λ·(1 − cos(t̂_i, t_i)) ]
///
/// All parameters live in one `ParameterStore` (vision, text, heads, in that order); the
/// trainable ones form the flat buffer the optimiser and the gradient allreduce work on.
///
/// Data parallelism: each rank calls `forwardBackward` on its local rows with
/// `globalBatch` = the size N of the global batch. Every per-sample term is divided by N,
/// so the rank's gradient is its share of ∂L/∂θ and the allreduced SUM of the gradients
/// equals the gradient a single rank would compute on the whole batch (and the SUM of the
/// returned losses is the global loss). See docs/training-math.md.
public final class CLIPITModel: TrainableModel {
    public let config: CLIPITConfig
    public let store: ParameterStore
    public let vision: VisionTransformer
    /// The text tower; nil when the loss has no distillation term.
    public let text: TextTransformer?
    public let heads: CLIPITHeads
    public let crossEntropy: CrossEntropyLoss
    public let distillation: CosineDistillationLoss

    private let visionTrains: Bool
    private let textTrains: Bool
    private let dLogits: ActivationBuffer     // (B, C)
    private let dFeatures: ActivationBuffer   // (B, E)
    private let dText: ActivationBuffer       // (B, D)
    /// v of the last forward, (B, E); owned by the vision tower.
    public private(set) var visionFeatures: UnsafePointer<Float>?
    /// t of the last training forward, (B, D); owned by the text tower.
    public private(set) var lastTextEmbeddings: UnsafePointer<Float>?

    /// Builds the towers and heads and initialises every parameter from `seed` (LoRA B = 0,
    /// PyTorch default Linear init for the heads); load pretrained weights afterwards.
    public init(_ config: CLIPITConfig, seed: UInt64) {
        precondition(config.classes > 0, "CLIPITConfig: classes must be positive")
        self.config = config
        let store = ParameterStore()
        self.store = store
        vision = VisionTransformer(config: config.vision, training: config.visionTraining, store: store)
        if config.distillation {
            let training = config.textGradient == .stopped ? TowerTraining.frozen : config.textTraining
            text = TextTransformer(config: config.text, training: training, store: store)
        } else {
            text = nil
        }
        heads = CLIPITHeads(config.heads, store: store)
        let arena = store.activations
        crossEntropy = CrossEntropyLoss(classes: config.classes, mode: config.crossEntropy, arena: arena)
        distillation = CosineDistillationLoss(width: config.text.outputDim, arena: arena)
        let c = config.classes, e = config.vision.outputDim, d = config.distillation ? config.text.outputDim : 0
        dLogits = arena.buffer("model.d_logits") { $0.samples * c }
        dFeatures = arena.buffer("model.d_features") { $0.samples * e }
        dText = arena.buffer("model.d_text") { $0.samples * d }
        store.allocate(seed: seed)
        visionTrains = store.hasTrainableParameters(prefix: vision.prefix)
        textTrains = text.map { store.hasTrainableParameters(prefix: $0.prefix) } ?? false
    }

    /// One training forward and backward on `batch` local samples: images (B, 3, H, W)
    /// normalised NCHW, labels (B) in 0..<C, token ids (B, L) of each image's paired report
    /// (may be nil without a distillation term). Adds ∂L/∂θ into `store.gradients` and, if
    /// `dImages` is given, ∂L/∂images into it. Per-sample terms are divided by `globalBatch`
    /// (default: `batch`, single rank).
    @discardableResult
    public func forwardBackward(images: UnsafePointer<Float>, labels: UnsafePointer<Int32>,
                                tokens: UnsafePointer<Int32>?, batch: Int, globalBatch: Int? = nil,
                                dImages: UnsafeMutablePointer<Float>? = nil,
                                textEmbeddings: UnsafePointer<Float>? = nil) -> LossBreakdown {
        let loss = forward(images: images, labels: labels, tokens: tokens, batch: batch,
                           globalBatch: globalBatch, textEmbeddings: textEmbeddings)
        backward(batch: batch, dImages: dImages)
        return loss
    }

    /// The loss without a backward pass (validation), same arguments as `forwardBackward`.
    /// Runs in whatever mode `isTraining` is in.
    public func loss(images: UnsafePointer<Float>, labels: UnsafePointer<Int32>,
                     tokens: UnsafePointer<Int32>?, batch: Int, globalBatch: Int? = nil) -> LossBreakdown {
        forward(images: images, labels: labels, tokens: tokens, batch: batch, globalBatch: globalBatch)
    }

    private func forward(images: UnsafePointer<Float>, labels: UnsafePointer<Int32>,
                         tokens: UnsafePointer<Int32>?, batch: Int, globalBatch: Int?,
                         textEmbeddings: UnsafePointer<Float>? = nil) -> LossBreakdown {
        let n = globalBatch ?? batch
        precondition(n >= batch && batch > 0, "CLIPITModel: globalBatch \(n) < local batch \(batch)")
        store.activations.reserve(samples: batch)
        let v = vision.forward(images: images, batch: batch)                   // (B, E)
        visionFeatures = v
        heads.forward(features: v, batch: batch)                               // z (B, C), t̂ (B, D)
        let ce = crossEntropy.forward(logits: heads.logits.data, labels: labels, rows: batch,
                                      normalizer: n)
        var distill: Float = 0
        if let text {
            let t: UnsafePointer<Float>
            if let textEmbeddings {
                precondition(!textTrains, "CLIPITModel: precomputed text embeddings with a trainable text tower")
                t = textEmbeddings                                             // (B, D), computed once per run
            } else {
                guard let tokens else { preconditionFailure("CLIPITModel: the distillation term needs token ids") }
                t = text.forward(tokens: tokens, batch: batch)                 // (B, D)
            }
            lastTextEmbeddings = t
            distill = distillation.forward(predicted: heads.projected.data, target: t, rows: batch,
                                           normalizer: n)
        }
        return LossBreakdown(total: ce + config.distillationWeight * distill, ce: ce, distill: distill)
    }

    /// Backward of the last `forward`: losses → heads → towers.
    private func backward(batch: Int, dImages: UnsafeMutablePointer<Float>?) {
        let e = vision.outputDim, c = config.classes
        dLogits.data.update(repeating: 0, count: batch * c)
        crossEntropy.backward(dLogits: dLogits.data)                            // (B, C)
        if let text {
            let d = text.outputDim
            dText.data.update(repeating: 0, count: batch * d)
            // λ·∂(1 − cos)/∂t̂ into the heads' t̂ gradient, ∂/∂t into dText unless stopped.
            distillation.backward(dPredicted: heads.projectedGrad.data,
                                  dTarget: textTrains ? dText.data : nil,
                                  scale: config.distillationWeight)
            if textTrains { text.backward(dFeatures: dText.data) }
        }
        let needFeatureGradient = visionTrains || dImages != nil
        if needFeatureGradient {
            dFeatures.data.update(repeating: 0, count: batch * e)
        }
        heads.backward(dLogits: dLogits.data, dFeatures: needFeatureGradient ? dFeatures.data : nil)
        if needFeatureGradient { vision.backward(dFeatures: dFeatures.data, dImages: dImages) }
    }

    /// Image-only inference (Stage 3): the fused logits (B, C) of `batch` images. The text
    /// tower is not touched. Runs in evaluation mode (no LoRA dropout); the result is owned
    /// by the model and valid until the next forward.
    public func predict(images: UnsafePointer<Float>, batch: Int) -> UnsafePointer<Float> {
        inEvaluationMode {
            store.activations.reserve(samples: batch)
            let v = vision.forward(images: images, batch: batch)
            visionFeatures = v
            heads.forward(features: v, batch: batch)
            return UnsafePointer(heads.logits.data)
        }
    }

    // MARK: TrainableModel

    public var towers: [any Tower] { text.map { [vision, $0] } ?? [vision] }
    public var classes: Int { config.classes }
    public var trainingInputs: ModelInputs { text == nil ? [.images] : [.images, .tokens] }
    public var predictionInputs: ModelInputs { [.images] }

    public func forwardBackward(_ batch: ModelBatch, globalBatch: Int) -> LossBreakdown {
        forwardBackward(images: batch.images!, labels: batch.labels!, tokens: batch.tokens, batch: batch.count,
                        globalBatch: globalBatch, textEmbeddings: batch.textEmbeddings)
    }

    /// Whether the distillation target t comes from a text tower that does not train (frozen,
    /// or `textGradient: stopped`): then t depends only on the report, and
    /// `embedReports` computes it once per run instead of every step.
    public var textTowerIsFrozen: Bool { text != nil && !textTrains }

    /// t of every report `(reports, D)`: the text tower on `tokens` `(reports, L)`, in
    /// chunks of at most `chunk` reports (the activations reserved), evaluation mode (the
    /// same function as the training forward of a tower without LoRA dropout to apply).
    public func embedReports(tokens: UnsafePointer<Int32>, count: Int, chunk: Int) -> [Float] {
        guard let text, count > 0 else { return [] }
        let d = text.outputDim, l = config.text.contextLength
        var table = [Float](repeating: 0, count: count * d)
        inEvaluationMode {
            for start in stride(from: 0, to: count, by: max(chunk, 1)) {
                let rows = min(chunk, count - start)
                store.activations.reserve(samples: rows)
                let t = text.forward(tokens: tokens + start * l, batch: rows)
                table.withUnsafeMutableBufferPointer { ($0.baseAddress! + start * d).update(from: t, count: rows * d) }
            }
        }
        return table
    }

    public func predict(_ batch: ModelBatch) -> UnsafePointer<Float> { predict(images: batch.images!, batch: batch.count) }

    public var textEmbeddingWidth: Int { text?.outputDim ?? 0 }
    public var textEmbeddings: UnsafePointer<Float>? { lastTextEmbeddings }
}
