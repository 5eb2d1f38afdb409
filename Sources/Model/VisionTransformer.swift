import Kernels

/// A ViT image tower with timm parameter names under `prefix` (default `vision.`):
///
///     tokens = [cls ; reg ; patch_embed(images)] + pos_embed   (B·T, E), T = 1 + R + N
///     x      = norm_pre(tokens)            (CLIP towers only)
///     x      = blocks[depth−1](… blocks[0](x))                 (B·T, E)
///     v      = pool(norm(x))               CLS row or mean of the patch rows   (B, E)
///              or attn_pool_norm(attn_pool(norm(x)))   (attentional, CoCa / CONCH) (B, d)
///     out    = v headᵀ                     (optional projection, no bias)      (B, Dp)
///
/// R register tokens (`reg_token`, timm `reg_tokens`) sit between the class token and the
/// patches; mean pooling skips them like the class token. `pos_embed` covers every token, or
/// with `noEmbedClass` (timm `no_embed_class`, DINOv2 with registers) the N patches only.
/// With CLS pooling the final norm (row-wise) is applied to the B pooled rows only,
/// which gives the same features as normalising every token, and the last block computes
/// its output for the class rows only (`lastBlockPoolsOnly`; `TransformerBlock`): the other
/// rows of its output feed nothing.
///
/// Buffers are allocated on the first forward of a batch size and reused. The encoder
/// owns its output; `forward` returns a pointer valid until the next forward.
public final class VisionTransformer {
    public let config: VisionConfig
    public let prefix: String
    public let training: TowerTraining
    public let patchEmbedding: PatchEmbedding
    /// `cls_token (1, 1, E)`.
    public let classToken: Parameter
    /// `reg_token (1, R, E)`; nil without register tokens.
    public let registerTokens: Parameter?
    /// `pos_embed (1, 1 + R + N, E)`, or `(1, N, E)` with `noEmbedClass`.
    public let positionEmbedding: Parameter
    public let preNorm: LayerNormLayer?
    public let blocks: [TransformerBlock]
    public let norm: LayerNormLayer?
    /// `attn_pool` and `attn_pool_norm` (attentional pooling only).
    public let attentionalPooler: AttentionalPooler?
    public let poolNorm: LayerNormLayer?
    public let head: Linear?
    /// Every Linear of the tower (patch embedding, blocks, head).
    public let linears: [Linear]

    /// Training mode: enables LoRA dropout in every Linear.
    public var isTraining = true {
        didSet { for l in linears { l.isTraining = isTraining } }
    }

    /// Whether the last block computes every token's output, so that `tokenFeatures` is
    /// available after a forward with CLS pooling (off: the class rows only).
    public var keepsAllTokens = false

    /// Whether the next forward's last block computes only the class rows: CLS pooling, no
    /// caller asking for every token, and no active LoRA dropout in that block (its masks
    /// are drawn per token row, so fewer rows would draw other masks).
    public var lastBlockPoolsOnly: Bool {
        guard config.pooling == .cls, !keepsAllTokens, let last = blocks.last else { return false }
        return !(isTraining && last.linears.contains { ($0.lora?.dropout ?? 0) > 0 })
    }

    private let arena: ActivationArena
    /// The model's execution state (row workers).
    private let execution: ModelExecution
    private var batch = 0
    /// Whether the last forward's last block computed the class rows only.
    private var pooledOnly = false
    /// The class row of each image (0), the last block's output positions.
    private var classRows: [Int] = []
    private let patchOut: ActivationBuffer     // (B·N, E)
    private let tokens: ActivationBuffer       // (B·T, E)  cls + registers + patches + pos
    private let preNormOut: ActivationBuffer   // (B·T, E)  (with a pre-norm)
    private let streams: [ActivationBuffer]    // depth × (B·T, E), block outputs
    private let gathered: ActivationBuffer     // (B, E)  CLS rows before the final norm
    private let normedAll: ActivationBuffer    // (B·T, E) final norm of every token (mean, attentional)
    private let poolerOut: ActivationBuffer    // (B, d)  attentional pooler output, before its norm
    private let dPoolerOut: ActivationBuffer   // (B, d)
    private let pooled: ActivationBuffer       // (B, E) / (B, d)
    private let features: ActivationBuffer     // (B, Dp) (with a head)
    private let dPooled: ActivationBuffer      // (B, E)
    private let dGathered: ActivationBuffer    // (B, E) / (B·T, E) for mean and attentional pooling
    private let dStreamA: ActivationBuffer     // (B·T, E)
    private let dStreamB: ActivationBuffer     // (B·T, E)
    private let dTokens: ActivationBuffer      // (B·T, E)
    private let dPatchOut: ActivationBuffer    // (B·N, E)

    public init(config: VisionConfig, training: TowerTraining, prefix: String = "vision.",
                store: ParameterStore) {
        self.config = config
        self.prefix = prefix
        self.training = training
        let region = training.baseRegion, E = config.width, N = config.patchCount, T = config.tokens
        let arena = store.activations
        self.arena = arena
        execution = store.execution
        let tokenRows = SampleRows(T)   // every token-level layer: T rows per image
        let scratch = BlockScratch(prefix + "scratch", width: E, mlpHidden: config.mlpHidden,
                                   rowsPerSample: tokenRows, arena: arena)   // shared by all blocks
        patchEmbedding = PatchEmbedding(prefix + "patch_embed", patchSize: config.patchSize,
                                        channels: config.channels, width: E, bias: config.patchBias,
                                        region: region, lora: training.patchEmbeddingLoRA, store: store,
                                        patchesPerImage: N)
        classToken = store.declare(prefix + "cls_token", shape: [1, 1, E], region: region,
                                   initializer: .normal(std: 1e-6))
        // timm initialises both prefix tokens N(0, 1e-6²); they train like the class token.
        registerTokens = config.registerTokens > 0
            ? store.declare(prefix + "reg_token", shape: [1, config.registerTokens, E], region: region,
                            initializer: .normal(std: 1e-6))
            : nil
        positionEmbedding = store.declare(prefix + "pos_embed", shape: [1, config.positionRows, E],
                                          region: region, initializer: .normal(std: 0.02))
        preNorm = config.preNorm
            ? LayerNormLayer(prefix + "norm_pre", features: E, eps: config.layerNormEps,
                             region: region, store: store, rowsPerSample: tokenRows)
            : nil
        blocks = (0..<config.depth).map { i in
            TransformerBlock(prefix + "blocks.\(i)", width: E, heads: config.heads,
                             mlpHidden: config.mlpHidden, activation: config.activation,
                             eps: config.layerNormEps, layerScaleInit: config.layerScaleInit,
                             naming: config.naming, qkv: config.qkvLayout, causal: false,
                             region: region, lora: training.blockLoRA, store: store, rowsPerSample: tokenRows,
                             scratch: scratch)
        }
        norm = config.finalNorm
            ? LayerNormLayer(prefix + "norm", features: E, eps: config.layerNormEps,
                             region: region, store: store,
                             rowsPerSample: config.pooling == .cls ? SampleRows(1) : tokenRows)
            : nil
        attentionalPooler = config.attentionalPooling.map {
            AttentionalPooler(prefix + "attn_pool", width: $0.width, contextWidth: E, heads: $0.heads,
                              eps: $0.layerNormEps, region: region, store: store, rowsPerSample: tokenRows)
        }
        poolNorm = config.attentionalPooling.map {
            LayerNormLayer(prefix + "attn_pool_norm", features: $0.width, eps: $0.layerNormEps, region: region,
                           store: store)
        }
        let D = config.pooledWidth
        head = config.projectionDim.map {
            Linear(prefix + "head", in: D, out: $0, bias: false, region: region,
                   lora: training.projectionLoRA, store: store)
        }
        let poolerLinears = attentionalPooler.map { [$0.qProj, $0.kProj, $0.vProj, $0.outProj] } ?? []
        linears = [patchEmbedding.proj] + blocks.flatMap(\.linears) + poolerLinears + (head.map { [$0] } ?? [])
        func buffer(_ name: String, rowsPerImage: Int, width: Int) -> ActivationBuffer {
            arena.buffer(prefix + name) { $0.samples * rowsPerImage * width }
        }
        let pre = config.preNorm ? 1 : 0, mean = config.pooling == .cls ? 0 : 1   // every token normed
        let attentional = config.pooling == .attentional ? 1 : 0
        patchOut = buffer("patch_out", rowsPerImage: N, width: E)
        tokens = buffer("tokens", rowsPerImage: T, width: E)
        preNormOut = buffer("pre_norm_out", rowsPerImage: T * pre, width: E)
        streams = (0..<config.depth).map { buffer("blocks.\($0).out", rowsPerImage: T, width: E) }
        gathered = buffer("gathered", rowsPerImage: 1, width: E)
        normedAll = buffer("normed_all", rowsPerImage: T * mean, width: E)
        poolerOut = buffer("pooler_out", rowsPerImage: attentional, width: D)
        dPoolerOut = buffer("d_pooler_out", rowsPerImage: attentional, width: D)
        pooled = buffer("pooled", rowsPerImage: 1, width: D)
        features = buffer("features", rowsPerImage: 1, width: config.projectionDim ?? 0)
        dPooled = buffer("d_pooled", rowsPerImage: 1, width: D)
        dGathered = buffer("d_gathered", rowsPerImage: mean == 1 ? T : 1, width: E)
        dStreamA = buffer("d_stream_a", rowsPerImage: T, width: E)
        dStreamB = buffer("d_stream_b", rowsPerImage: T, width: E)
        dTokens = buffer("d_tokens", rowsPerImage: T * pre, width: E)
        dPatchOut = buffer("d_patch_out", rowsPerImage: N, width: E)
    }

    /// Width of the returned features.
    public var outputDim: Int { config.outputDim }

    /// Every token of the latest forward after the last block and before the final norm,
    /// `(B·T, E)` in the order class token, register tokens, patches (timm's
    /// `forward_features` without `norm`). Valid until the next forward; with CLS pooling
    /// only when `keepsAllTokens` is set.
    public var tokenFeatures: UnsafePointer<Float> {
        precondition(!pooledOnly, "VisionTransformer: tokenFeatures needs keepsAllTokens (the last block computed the class rows only)")
        return UnsafePointer((streams.last ?? (preNorm == nil ? tokens : preNormOut)).data)
    }

    /// Analytic forward FLOPs (matrix products only) for `batch` images.
    public func forwardFlops(batch: Int) -> Double {
        let T = config.tokens
        var f = patchEmbedding.forwardFlops(batch: batch, height: config.imageSize, width: config.imageSize)
        let pooledLast = lastBlockPoolsOnly
        for (i, b) in blocks.enumerated() {
            f += b.forwardFlops(batch: batch, tokens: T, oneOutput: pooledLast && i == blocks.count - 1)
        }
        if let attentionalPooler { f += attentionalPooler.forwardFlops(batch: batch, tokens: T) }
        if let head { f += head.forwardFlops(rows: batch) }
        return f
    }

    /// Folds LoRA into every Linear (inference); `unmergeLoRA` undoes it.
    public func mergeLoRA() { for l in linears { l.mergeLoRA() } }
    public func unmergeLoRA() { for l in linears { l.unmergeLoRA() } }

    /// Pooled (and projected) features (B, outputDim) of images (B, C, H, W), H = W =
    /// `config.imageSize`, normalised NCHW. The result is owned by the encoder and valid
    /// until the next forward; `images` must stay valid until `backward`.
    public func forward(images: UnsafePointer<Float>, batch: Int) -> UnsafePointer<Float> {
        let E = config.width, N = config.patchCount, T = config.tokens, rows = batch * T
        let P = config.prefixTokens, R = config.registerTokens
        self.batch = batch
        arena.reserve(samples: batch)

        patchEmbedding.forward(images, patchOut.data, batch: batch, height: config.imageSize,
                               width: config.imageSize)
        for b in 0..<batch {
            (tokens.data + b * T * E).update(from: classToken.value, count: E)
            if let registerTokens { (tokens.data + (b * T + 1) * E).update(from: registerTokens.value, count: R * E) }
            (tokens.data + (b * T + P) * E).update(from: patchOut.data + b * N * E, count: N * E)
        }
        addPositionEmbedding(tokens.data, positionEmbedding.value, batch: batch, tokens: T, width: E,
                             skipping: T - config.positionRows)
        var x = UnsafePointer(tokens.data)
        if let preNorm {
            preNorm.forward(x, preNormOut.data, rows: rows)
            x = UnsafePointer(preNormOut.data)
        }
        pooledOnly = lastBlockPoolsOnly
        if pooledOnly && classRows.count != batch { classRows = Array(repeating: 0, count: batch) }
        for (i, (block, out)) in zip(blocks, streams).enumerated() {
            let outputs = pooledOnly && i == blocks.count - 1 ? classRows : nil
            block.forward(x, out.data, batch: batch, tokens: T, outputs: outputs)
            x = UnsafePointer(out.data)
        }
        switch config.pooling {
        case .cls:
            let stride = pooledOnly ? E : T * E   // the last block's output: class rows only, or every token
            for b in 0..<batch { (gathered.data + b * E).update(from: x + b * stride, count: E) }
            if let norm {
                norm.forward(gathered.data, pooled.data, rows: batch)
            } else {
                pooled.data.update(from: gathered.data, count: batch * E)
            }
        case .mean:
            var source = x
            if let norm {
                norm.forward(x, normedAll.data, rows: rows)
                source = UnsafePointer(normedAll.data)
            }
            pooled.data.update(repeating: 0, count: batch * E)
            let inverse = 1 / Float(N)
            for b in 0..<batch {
                for t in P..<T { axpy(inverse, source + (b * T + t) * E, pooled.data + b * E, count: E) }
            }
        case .attentional:
            var source = x
            if let norm {
                norm.forward(x, normedAll.data, rows: rows)
                source = UnsafePointer(normedAll.data)
            }
            attentionalPooler!.forward(source, poolerOut.data, batch: batch, tokens: T)
            poolNorm!.forward(poolerOut.data, pooled.data, rows: batch)
        }
        guard let head else { return UnsafePointer(pooled.data) }
        head.forward(pooled.data, features.data, rows: batch)
        return UnsafePointer(features.data)
    }

    /// Adds parameter gradients given dFeatures (B, outputDim), and ∂L/∂images into
    /// `dImages` (B, C, H, W) when given.
    public func backward(dFeatures: UnsafePointer<Float>, dImages: UnsafeMutablePointer<Float>?) {
        let E = config.width, N = config.patchCount, T = config.tokens, rows = batch * T
        let P = config.prefixTokens, R = config.registerTokens, D = config.pooledWidth
        if let head {
            dPooled.data.update(repeating: 0, count: batch * D)
            head.backward(dFeatures, dx: dPooled.data)
        } else {
            dPooled.data.update(from: dFeatures, count: batch * D)
        }
        var dX = dStreamA, dPrevious = dStreamB   // (B·T, E) each
        zeroFill(dX.data, count: rows * E, workers: execution.rowWorkers)
        switch config.pooling {
        case .cls:
            var dCLS = UnsafePointer(dPooled.data)
            if let norm {
                dGathered.data.update(repeating: 0, count: batch * E)
                norm.backward(dPooled.data, dx: dGathered.data)
                dCLS = UnsafePointer(dGathered.data)
            }
            let stride = pooledOnly ? E : T * E
            for b in 0..<batch { (dX.data + b * stride).update(from: dCLS + b * E, count: E) }
        case .mean:
            let dNormed = norm == nil ? dX.data : dGathered.data
            dNormed.update(repeating: 0, count: rows * E)
            let inverse = 1 / Float(N)
            for b in 0..<batch {
                for t in P..<T { axpy(inverse, dPooled.data + b * E, dNormed + (b * T + t) * E, count: E) }
            }
            if let norm { norm.backward(dGathered.data, dx: dX.data) }
        case .attentional:
            dPoolerOut.data.update(repeating: 0, count: batch * D)
            poolNorm!.backward(dPooled.data, dx: dPoolerOut.data)
            let dNormed = norm == nil ? dX.data : dGathered.data
            dNormed.update(repeating: 0, count: rows * E)
            attentionalPooler!.backward(dPoolerOut.data, dx: dNormed)
            if let norm { norm.backward(dGathered.data, dx: dX.data) }
        }
        for block in blocks.reversed() {
            block.backward(dX.data, dx: dPrevious.data, accumulate: false)
            swap(&dX, &dPrevious)
        }
        var dTok = dX.data
        if let preNorm {
            dTokens.data.update(repeating: 0, count: rows * E)
            preNorm.backward(dX.data, dx: dTokens.data)
            dTok = dTokens.data
        }
        // Each prefix parameter and pos_embed row gets the sum over the batch of its tokens' rows.
        if let g = positionEmbedding.gradient {
            positionEmbeddingBackward(dTok, g, batch: batch, tokens: T, width: E, skipping: T - config.positionRows)
        }
        if let g = classToken.gradient {
            for b in 0..<batch { axpy(1, dTok + b * T * E, g, count: E) }
        }
        if let g = registerTokens?.gradient {
            for b in 0..<batch { axpy(1, dTok + (b * T + 1) * E, g, count: R * E) }
        }
        for b in 0..<batch {
            (dPatchOut.data + b * N * E).update(from: dTok + (b * T + P) * E, count: N * E)
        }
        patchEmbedding.backward(dPatchOut.data, dImages: dImages)
    }
}
