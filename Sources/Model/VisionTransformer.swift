import Kernels

/// A ViT image tower with timm parameter names under `prefix` (default `vision.`):
///
///     tokens = [cls ; patch_embed(images)] + pos_embed         (B·T, E), T = 1 + N
///     x      = norm_pre(tokens)            (CLIP towers only)
///     x      = blocks[depth−1](… blocks[0](x))                 (B·T, E)
///     v      = pool(norm(x))               CLS row or mean of the patch rows   (B, E)
///     out    = v headᵀ                     (optional projection, no bias)      (B, Dp)
///
/// With CLS pooling the final norm (row-wise) is applied to the B pooled rows only,
/// which gives the same features as normalising every token.
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
    /// `pos_embed (1, 1 + N, E)`.
    public let positionEmbedding: Parameter
    public let preNorm: LayerNormLayer?
    public let blocks: [TransformerBlock]
    public let norm: LayerNormLayer?
    public let head: Linear?
    /// Every Linear of the tower (patch embedding, blocks, head).
    public let linears: [Linear]

    /// Training mode: enables LoRA dropout in every Linear.
    public var isTraining = true {
        didSet { for l in linears { l.isTraining = isTraining } }
    }

    private let arena: ActivationArena
    private var batch = 0
    private let patchOut: ActivationBuffer     // (B·N, E)
    private let tokens: ActivationBuffer       // (B·T, E)  cls + patches + pos
    private let preNormOut: ActivationBuffer   // (B·T, E)  (with a pre-norm)
    private let streams: [ActivationBuffer]    // depth × (B·T, E), block outputs
    private let gathered: ActivationBuffer     // (B, E)  CLS rows before the final norm
    private let normedAll: ActivationBuffer    // (B·T, E) final norm of every token (mean pooling)
    private let pooled: ActivationBuffer       // (B, E)
    private let features: ActivationBuffer     // (B, Dp) (with a head)
    private let dPooled: ActivationBuffer      // (B, E)
    private let dGathered: ActivationBuffer    // (B, E) / (B·T, E) for mean pooling
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
        let tokenRows = SampleRows(T)   // every token-level layer: T rows per image
        let scratch = BlockScratch(prefix + "scratch", width: E, mlpHidden: config.mlpHidden,
                                   rowsPerSample: tokenRows, arena: arena)   // shared by all blocks
        patchEmbedding = PatchEmbedding(prefix + "patch_embed", patchSize: config.patchSize,
                                        channels: config.channels, width: E, bias: config.patchBias,
                                        region: region, lora: training.patchEmbeddingLoRA, store: store,
                                        patchesPerImage: N)
        classToken = store.declare(prefix + "cls_token", shape: [1, 1, E], region: region,
                                   initializer: .normal(std: 1e-6))
        positionEmbedding = store.declare(prefix + "pos_embed", shape: [1, config.tokens, E],
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
        head = config.projectionDim.map {
            Linear(prefix + "head", in: E, out: $0, bias: false, region: region,
                   lora: training.projectionLoRA, store: store)
        }
        linears = [patchEmbedding.proj] + blocks.flatMap(\.linears) + (head.map { [$0] } ?? [])
        func buffer(_ name: String, rowsPerImage: Int, width: Int) -> ActivationBuffer {
            arena.buffer(prefix + name) { $0.samples * rowsPerImage * width }
        }
        let pre = config.preNorm ? 1 : 0, mean = config.pooling == .mean ? 1 : 0
        patchOut = buffer("patch_out", rowsPerImage: N, width: E)
        tokens = buffer("tokens", rowsPerImage: T, width: E)
        preNormOut = buffer("pre_norm_out", rowsPerImage: T * pre, width: E)
        streams = (0..<config.depth).map { buffer("blocks.\($0).out", rowsPerImage: T, width: E) }
        gathered = buffer("gathered", rowsPerImage: 1, width: E)
        normedAll = buffer("normed_all", rowsPerImage: T * mean, width: E)
        pooled = buffer("pooled", rowsPerImage: 1, width: E)
        features = buffer("features", rowsPerImage: 1, width: config.projectionDim ?? 0)
        dPooled = buffer("d_pooled", rowsPerImage: 1, width: E)
        dGathered = buffer("d_gathered", rowsPerImage: mean == 1 ? T : 1, width: E)
        dStreamA = buffer("d_stream_a", rowsPerImage: T, width: E)
        dStreamB = buffer("d_stream_b", rowsPerImage: T, width: E)
        dTokens = buffer("d_tokens", rowsPerImage: T * pre, width: E)
        dPatchOut = buffer("d_patch_out", rowsPerImage: N, width: E)
    }

    /// Width of the returned features.
    public var outputDim: Int { config.outputDim }

    /// Analytic forward FLOPs (matrix products only) for `batch` images.
    public func forwardFlops(batch: Int) -> Double {
        let T = config.tokens
        var f = patchEmbedding.forwardFlops(batch: batch, height: config.imageSize, width: config.imageSize)
        for b in blocks { f += b.forwardFlops(batch: batch, tokens: T) }
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
        self.batch = batch
        arena.reserve(samples: batch)

        patchEmbedding.forward(images, patchOut.data, batch: batch, height: config.imageSize,
                               width: config.imageSize)
        for b in 0..<batch {
            (tokens.data + b * T * E).update(from: classToken.value, count: E)
            (tokens.data + (b * T + 1) * E).update(from: patchOut.data + b * N * E, count: N * E)
        }
        addPositionEmbedding(tokens.data, positionEmbedding.value, batch: batch, tokens: T, width: E)
        var x = UnsafePointer(tokens.data)
        if let preNorm {
            preNorm.forward(x, preNormOut.data, rows: rows)
            x = UnsafePointer(preNormOut.data)
        }
        for (block, out) in zip(blocks, streams) {
            block.forward(x, out.data, batch: batch, tokens: T)
            x = UnsafePointer(out.data)
        }
        switch config.pooling {
        case .cls:
            for b in 0..<batch { (gathered.data + b * E).update(from: x + b * T * E, count: E) }
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
                for t in 1..<T { axpy(inverse, source + (b * T + t) * E, pooled.data + b * E, count: E) }
            }
        }
        guard let head else { return UnsafePointer(pooled.data) }
        head.forward(pooled.data, features.data, rows: batch)
        return UnsafePointer(features.data)
    }

    /// Adds parameter gradients given dFeatures (B, outputDim), and ∂L/∂images into
    /// `dImages` (B, C, H, W) when given.
    public func backward(dFeatures: UnsafePointer<Float>, dImages: UnsafeMutablePointer<Float>?) {
        let E = config.width, N = config.patchCount, T = config.tokens, rows = batch * T
        if let head {
            dPooled.data.update(repeating: 0, count: batch * E)
            head.backward(dFeatures, dx: dPooled.data)
        } else {
            dPooled.data.update(from: dFeatures, count: batch * E)
        }
        var dX = dStreamA, dPrevious = dStreamB   // (B·T, E) each
        dX.data.update(repeating: 0, count: rows * E)
        switch config.pooling {
        case .cls:
            var dCLS = UnsafePointer(dPooled.data)
            if let norm {
                dGathered.data.update(repeating: 0, count: batch * E)
                norm.backward(dPooled.data, dx: dGathered.data)
                dCLS = UnsafePointer(dGathered.data)
            }
            for b in 0..<batch { (dX.data + b * T * E).update(from: dCLS + b * E, count: E) }
        case .mean:
            let dNormed = norm == nil ? dX.data : dGathered.data
            dNormed.update(repeating: 0, count: rows * E)
            let inverse = 1 / Float(N)
            for b in 0..<batch {
                for t in 1..<T { axpy(inverse, dPooled.data + b * E, dNormed + (b * T + t) * E, count: E) }
            }
            if let norm { norm.backward(dGathered.data, dx: dX.data) }
        }
        for block in blocks.reversed() {
            dPrevious.data.update(repeating: 0, count: rows * E)
            block.backward(dX.data, dx: dPrevious.data)
            swap(&dX, &dPrevious)
        }
        var dTok = dX.data
        if let preNorm {
            dTokens.data.update(repeating: 0, count: rows * E)
            preNorm.backward(dX.data, dx: dTokens.data)
            dTok = dTokens.data
        }
        if let g = positionEmbedding.gradient {
            positionEmbeddingBackward(dTok, g, batch: batch, tokens: T, width: E)
        }
        if let g = classToken.gradient {
            for b in 0..<batch { axpy(1, dTok + b * T * E, g, count: E) }
        }
        for b in 0..<batch {
            (dPatchOut.data + b * N * E).update(from: dTok + (b * T + 1) * E, count: N * E)
        }
        patchEmbedding.backward(dPatchOut.data, dImages: dImages)
    }
}

/// Resamples the patch-grid part of a ViT position embedding to a new grid by bilinear
/// interpolation with PyTorch's `F.interpolate(mode="bilinear", align_corners=False,
/// antialias=False)` sampling: output pixel i reads the input at
/// `max(0, (i + ½)·(in/out) − ½)`, blending the two neighbouring rows/columns (the upper
/// one clamped to the edge). timm resamples bicubically (with antialiasing when
/// shrinking); bilinear is what we implement, so a resampled checkpoint is close to but
/// not bit-identical with timm's. The first `prefixTokens` rows (the class token's) are
/// copied unchanged. At the same grid size the result equals the input exactly.
///
/// - Parameters:
///   - source: `(prefixTokens + oldGrid.h·oldGrid.w, width)`, row-major, grid rows y-major.
///   - destination: `(prefixTokens + newGrid.h·newGrid.w, width)`.
public func interpolatePositionEmbedding(_ source: UnsafePointer<Float>,
                                         into destination: UnsafeMutablePointer<Float>,
                                         prefixTokens: Int, oldGrid: (height: Int, width: Int),
                                         newGrid: (height: Int, width: Int), width: Int) {
    let D = width
    destination.update(from: source, count: prefixTokens * D)
    let src = source + prefixTokens * D, dst = destination + prefixTokens * D
    func taps(_ i: Int, _ inSize: Int, _ outSize: Int) -> (Int, Int, Float) {
        let scale = Float(inSize) / Float(outSize)
        let x = max(0, (Float(i) + 0.5) * scale - 0.5)
        let i0 = min(Int(x), inSize - 1)
        let i1 = min(i0 + 1, inSize - 1)
        return (i0, i1, x - Float(i0))
    }
    for oy in 0..<newGrid.height {
        let (y0, y1, wy) = taps(oy, oldGrid.height, newGrid.height)
        for ox in 0..<newGrid.width {
            let (x0, x1, wx) = taps(ox, oldGrid.width, newGrid.width)
            let out = dst + (oy * newGrid.width + ox) * D
            let p00 = src + (y0 * oldGrid.width + x0) * D, p01 = src + (y0 * oldGrid.width + x1) * D
            let p10 = src + (y1 * oldGrid.width + x0) * D, p11 = src + (y1 * oldGrid.width + x1) * D
            let w00 = (1 - wy) * (1 - wx), w01 = (1 - wy) * wx, w10 = wy * (1 - wx), w11 = wy * wx
            for j in 0..<D { out[j] = w00 * p00[j] + w01 * p01[j] + w10 * p10[j] + w11 * p11[j] }
        }
    }
}

/// Array form of `interpolatePositionEmbedding(_:into:…)`.
public func interpolatePositionEmbedding(_ source: [Float], prefixTokens: Int,
                                         oldGrid: (height: Int, width: Int),
                                         newGrid: (height: Int, width: Int), width: Int) -> [Float] {
    precondition(source.count == (prefixTokens + oldGrid.height * oldGrid.width) * width,
                 "interpolatePositionEmbedding: \(source.count) values for a \(oldGrid) grid of width \(width) with \(prefixTokens) prefix tokens")
    var out = [Float](repeating: 0, count: (prefixTokens + newGrid.height * newGrid.width) * width)
    source.withUnsafeBufferPointer { s in
        out.withUnsafeMutableBufferPointer { d in
            interpolatePositionEmbedding(s.baseAddress!, into: d.baseAddress!, prefixTokens: prefixTokens,
                                         oldGrid: oldGrid, newGrid: newGrid, width: width)
        }
    }
    return out
}
