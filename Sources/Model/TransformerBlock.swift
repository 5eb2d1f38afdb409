import Kernels

/// Which upstream naming a transformer block follows.
public enum BlockNaming: String, Codable, Sendable {
    /// timm: `norm1`, `attn.{qkv,proj}`, `ls1.gamma`, `norm2`, `mlp.fc{1,2}`, `ls2.gamma`.
    case timm
    /// HF CLIP: `layer_norm1`, `self_attn.{q,k,v,out}_proj`, `layer_norm2`, `mlp.fc{1,2}`.
    case hfCLIP
}

/// Which Linears of a block get LoRA.
public struct BlockLoRA {
    public var attention: LoRAConfig?
    public var mlp: LoRAConfig?
    public init(attention: LoRAConfig?, mlp: LoRAConfig?) {
        self.attention = attention
        self.mlp = mlp
    }
}

/// A pre-LN transformer block (timm `Block`, HF `CLIPEncoderLayer`):
///
///     x₁ = x  + ls1 ⊙ attn(norm1(x))
///     y  = x₁ + ls2 ⊙ mlp(norm2(x₁))
///
/// LayerScale (`ls1.gamma`, `ls2.gamma`, CaiT / UNI) is optional; without it ls = 1.
///
/// Given `outputs` (one token position per sequence), the block computes y for those rows
/// only, (B, E): norm1 and the key/value projections still see every token, the attention
/// (one query row), the residuals and the MLP only the B rows. A tower's last block does
/// this for the row it pools: the same math, a fraction of the work.
public final class TransformerBlock {
    public let name: String
    public let width: Int
    public let norm1: LayerNormLayer
    public let attention: MultiHeadAttention
    public let norm2: LayerNormLayer
    public let mlp: MLP
    public let layerScale1: Parameter?
    public let layerScale2: Parameter?
    /// The block's Linear layers (attention, then MLP), built once.
    public let linears: [Linear]

    /// T, the tokens per sequence (shared with the owning tower).
    public let rowsPerSample: SampleRows
    private let arena: ActivationArena
    /// The model's execution state (row workers).
    private let execution: ModelExecution
    private var batch = 0, tokens = 0
    /// The output positions of the last forward; nil = every token.
    private var outputs: [Int]?
    private let norm1Out: ActivationBuffer    // (rows, E)
    private let attnOut: ActivationBuffer     // (rows, E)  before LayerScale
    private let residual1: ActivationBuffer   // (rows, E)  x₁
    private let norm2Out: ActivationBuffer    // (rows, E)
    private let mlpOut: ActivationBuffer      // (rows, E)  before LayerScale
    /// Backward scratch, shared with the other blocks of a tower.
    private let scratch: BlockScratch

    public init(_ name: String, width: Int, heads: Int, mlpHidden: Int, activation: Activation,
                eps: Float, layerScaleInit: Float?, naming: BlockNaming, qkv: QKVLayout,
                causal: Bool, region: ParameterRegion, lora: BlockLoRA, store: ParameterStore,
                rowsPerSample: SampleRows = SampleRows(), scratch: BlockScratch? = nil) {
        self.name = name
        self.width = width
        self.rowsPerSample = rowsPerSample
        let arena = store.activations
        self.arena = arena
        execution = store.execution
        let scratch = scratch ?? BlockScratch(name + ".scratch", width: width, mlpHidden: mlpHidden,
                                              rowsPerSample: rowsPerSample, arena: arena)
        self.scratch = scratch
        let timm = naming == .timm
        norm1 = LayerNormLayer(name + (timm ? ".norm1" : ".layer_norm1"), features: width, eps: eps,
                               region: region, store: store, rowsPerSample: rowsPerSample)
        attention = MultiHeadAttention(name + (timm ? ".attn" : ".self_attn"), embedDim: width,
                                       heads: heads, layout: qkv, causal: causal, region: region,
                                       lora: lora.attention, store: store, rowsPerSample: rowsPerSample,
                                       scratch: scratch.attention)
        layerScale1 = layerScaleInit.map {
            store.declare(name + ".ls1.gamma", shape: [width], region: region, initializer: .constant($0))
        }
        norm2 = LayerNormLayer(name + (timm ? ".norm2" : ".layer_norm2"), features: width, eps: eps,
                               region: region, store: store, rowsPerSample: rowsPerSample)
        mlp = MLP(name + ".mlp", features: width, hidden: mlpHidden, activation: activation,
                  region: region, lora: lora.mlp, store: store, rowsPerSample: rowsPerSample,
                  scratch: scratch.mlp)
        layerScale2 = layerScaleInit.map {
            store.declare(name + ".ls2.gamma", shape: [width], region: region, initializer: .constant($0))
        }
        linears = attention.linears + mlp.linears
        let rowFloats: (ActivationShape) -> Int = { $0.samples * rowsPerSample.count * width }
        norm1Out = arena.buffer(name + ".norm1_out", size: rowFloats)
        attnOut = arena.buffer(name + ".attn_out", size: rowFloats)
        residual1 = arena.buffer(name + ".residual1", size: rowFloats)
        norm2Out = arena.buffer(name + ".norm2_out", size: rowFloats)
        mlpOut = arena.buffer(name + ".mlp_out", size: rowFloats)
    }

    /// Analytic forward FLOPs; `oneOutput`: one output row per sequence.
    public func forwardFlops(batch: Int, tokens: Int, oneOutput: Bool = false) -> Double {
        attention.forwardFlops(batch: batch, tokens: tokens, oneQuery: oneOutput)
            + mlp.forwardFlops(rows: oneOutput ? batch : batch * tokens)
    }

    /// y (B·T, E) ← block(x (B·T, E)); with `outputs` (a token position per sequence), y
    /// (B, E) holds those rows only. y must not alias x. x must stay valid until `backward`.
    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                        batch: Int, tokens: Int, outputs: [Int]? = nil) {
        let rows = batch * tokens, E = width
        self.batch = batch
        self.tokens = tokens
        self.outputs = outputs
        arena.reserve(samples: batch, rows: rowsPerSample, perSample: tokens)   // on its own: the call's count
        norm1.forward(x, norm1Out.data, rows: rows)
        attention.forward(norm1Out.data, attnOut.data, batch: batch, tokens: tokens, queries: outputs)
        let outRows: Int
        if let outputs {
            outRows = batch
            for (b, t) in outputs.enumerated() {
                addScaledResidual(x + (b * tokens + t) * E, attnOut.data + b * E, layerScale1,
                                  residual1.data + b * E, rows: 1)
            }
        } else {
            outRows = rows
            addScaledResidual(x, attnOut.data, layerScale1, residual1.data, rows: rows)
        }
        norm2.forward(residual1.data, norm2Out.data, rows: outRows)
        mlp.forward(norm2Out.data, mlpOut.data, rows: outRows)
        addScaledResidual(residual1.data, mlpOut.data, layerScale2, y, rows: outRows)
    }

    /// dx (B·T, E) += ∂L/∂x given dy (B·T, E), or (B, E) after a forward with `outputs`;
    /// `accumulate: false` overwrites dx (the caller need not zero it).
    public func backward(_ dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, accumulate: Bool = true) {
        let rows = batch * tokens, n = rows * width
        let outRows = outputs == nil ? rows : batch, outN = outRows * width
        let dResidual1 = scratch.dResidual1.data   // (rows, E)
        let dBranch = scratch.dBranch.data         // (rows, E)
        let dNorm = scratch.dNorm.data             // (rows, E)
        // y = x₁ + ls2 ⊙ m:  dx₁ = dy (+ norm2 path below), dm = ls2 ⊙ dy, dls2 += Σ dy ⊙ m.
        let workers = execution.rowWorkers
        concurrentChunks(outN, workers: workers, minimumPerWorker: 1 << 16) { r in
            (dResidual1 + r.lowerBound).update(from: dy + r.lowerBound, count: r.count)
        }
        let dMLP = branchGradient(dy, mlpOut.data, layerScale2, scratch: dBranch, rows: outRows)
        mlp.backward(dMLP, dx: dNorm, accumulate: false)
        norm2.backward(dNorm, dx: dResidual1)
        // x₁ = x + ls1 ⊙ a:  dx += dx₁ (+ norm1 path), da = ls1 ⊙ dx₁, dls1 += Σ dx₁ ⊙ a.
        if let outputs {
            if !accumulate { zeroFill(dx, count: n, workers: workers) }
            for (b, t) in outputs.enumerated() {
                axpy(1, dResidual1 + b * width, dx + (b * tokens + t) * width, count: width)
            }
        } else if accumulate {
            axpy(1, dResidual1, dx, count: n)
        } else {
            concurrentChunks(n, workers: workers, minimumPerWorker: 1 << 16) { r in
                (dx + r.lowerBound).update(from: dResidual1 + r.lowerBound, count: r.count)
            }
        }
        let dAttention = branchGradient(dResidual1, attnOut.data, layerScale1, scratch: dBranch, rows: outRows)
        attention.backward(dAttention, dx: dNorm, accumulate: false)
        norm1.backward(dNorm, dx: dx)
    }

    /// out (rows, E) = x + γ ⊙ branch (γ = 1 without LayerScale).
    private func addScaledResidual(_ x: UnsafePointer<Float>, _ branch: UnsafePointer<Float>,
                                   _ gamma: Parameter?, _ out: UnsafeMutablePointer<Float>, rows: Int) {
        let E = width
        guard let gamma else {
            concurrentChunks(rows, workers: execution.rowWorkers, minimumPerWorker: 64) { r in
                for i in (r.lowerBound * E)..<(r.upperBound * E) { out[i] = x[i] + branch[i] }
            }
            return
        }
        let g = gamma.value
        for r in 0..<rows {
            let xr = x + r * E, br = branch + r * E, o = out + r * E
            for j in 0..<E { o[j] = xr[j] + g[j] * br[j] }
        }
    }

    /// The gradient into a branch's output given d, the gradient of the sum it is added to:
    /// γ ⊙ d written into `scratch` (rows, E), with dγ += Σ_rows d ⊙ branch when γ is
    /// trainable; without LayerScale, d itself (no copy).
    private func branchGradient(_ d: UnsafePointer<Float>, _ branch: UnsafePointer<Float>,
                                _ gamma: Parameter?, scratch out: UnsafeMutablePointer<Float>,
                                rows: Int) -> UnsafePointer<Float> {
        let E = width
        guard let gamma else { return d }
        let g = gamma.value
        for r in 0..<rows {
            let dr = d + r * E, o = out + r * E
            for j in 0..<E { o[j] = g[j] * dr[j] }
        }
        if let dg = gamma.gradient {
            for r in 0..<rows {
                let dr = d + r * E, br = branch + r * E
                for j in 0..<E { dg[j] += dr[j] * br[j] }
            }
        }
        return UnsafePointer(out)
    }
}

/// The backward scratch of a tower's blocks, shared by all of them (one block runs its
/// backward at a time): dx₁, the gradient into an attention/MLP output and into a norm
/// output, (rows, E) each, plus the attention's and the MLP's own scratch.
public final class BlockScratch {
    let dResidual1: ActivationBuffer   // (rows, E)
    let dBranch: ActivationBuffer      // (rows, E)
    let dNorm: ActivationBuffer        // (rows, E)
    let attention: AttentionScratch
    let mlp: MLPScratch

    public init(_ name: String, width: Int, mlpHidden: Int, rowsPerSample: SampleRows, arena: ActivationArena) {
        let rowFloats: (ActivationShape) -> Int = { $0.samples * rowsPerSample.count * width }
        dResidual1 = arena.buffer(name + ".d_residual1", size: rowFloats)
        dBranch = arena.buffer(name + ".d_branch", size: rowFloats)
        dNorm = arena.buffer(name + ".d_norm", size: rowFloats)
        attention = AttentionScratch(name + ".attn", width: width, rowsPerSample: rowsPerSample, arena: arena)
        mlp = MLPScratch(name + ".mlp", hidden: mlpHidden, rowsPerSample: rowsPerSample, arena: arena)
    }
}
