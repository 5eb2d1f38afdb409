import Kernels


/// A CLIP text tower with HF `CLIPTextModelWithProjection` names (without `text_model.`)
/// under `prefix` (default `text.`):
///
///     x   = token_embedding(ids) + position_embedding          (B·L, D)
///     x   = encoder.layers[depth−1](… layers[0](x))            causal attention
///     t   = final_layer_norm(x[b, eot_b])                       (B, D), eot_b = first end-of-text
///     out = t text_projectionᵀ                                  (B, Dp)
///
/// With `classEmbedding` (CoCa / CONCH) the sequence is `[token_embedding(ids) ; cls]`,
/// S = L + 1 positions, pooled at the class row S − 1; keys j ≥ 1 whose id j − 1 is padding
/// (0) are masked (CONCH's shifted class-token mask): with the padding after the text, key j
/// is kept iff j ≤ n, n the ids before the first 0 (j = S − 1 itself iff n = L), which leaves
/// every row up to n — all the class row reads — as CONCH computes it.
/// The final norm is row-wise, so it is applied to the B pooled rows only.
public final class TextTransformer {
    public let config: TextConfig
    public let prefix: String
    public let training: TowerTraining
    public let tokenEmbedding: TokenEmbedding
    /// `embeddings.position_embedding.weight (S, D)`, S = `config.sequenceLength`.
    public let positionEmbedding: Parameter
    /// `embeddings.class_embedding (D)` (`classEmbedding` only; open_clip `cls_emb`).
    public let classEmbedding: Parameter?
    public let blocks: [TransformerBlock]
    public let finalNorm: LayerNormLayer
    public let projection: Linear?
    /// Every Linear of the tower (blocks, projection).
    public let linears: [Linear]
    /// The pooled position of each sequence of the last forward.
    public private(set) var poolPositions: [Int] = []

    /// Training mode: enables LoRA dropout in every Linear.
    public var isTraining = true {
        didSet { for l in linears { l.isTraining = isTraining } }
    }

    /// Whether the last block computes every token's output (off: the pooled rows only;
    /// the result is the same, `keepsAllTokens` exists to check that).
    public var keepsAllTokens = false

    /// Whether the next forward's last block computes only the pooled row of each sequence
    /// (the other rows feed nothing): unless `keepsAllTokens` is set or LoRA dropout is
    /// active in that block (its masks are drawn per token row).
    public var lastBlockPoolsOnly: Bool {
        guard !keepsAllTokens, let last = blocks.last else { return false }
        return !(isTraining && last.linears.contains { ($0.lora?.dropout ?? 0) > 0 })
    }

    private let arena: ActivationArena
    /// The model's execution state (row workers).
    private let execution: ModelExecution
    private var batch = 0
    /// Whether the last forward's last block computed the pooled rows only.
    private var pooledOnly = false
    private let tokenEmbedded: ActivationBuffer   // (B·L, D)  (class embedding: before the class row)
    private let embedded: ActivationBuffer    // (B·S, D)
    private let streams: [ActivationBuffer]   // depth × (B·S, D)
    private let gathered: ActivationBuffer    // (B, D)
    private let normed: ActivationBuffer      // (B, D)
    private let features: ActivationBuffer    // (B, Dp) (with a projection)
    private let dNormed: ActivationBuffer     // (B, D)
    private let dGathered: ActivationBuffer   // (B, D)
    private let dStreamA: ActivationBuffer    // (B·S, D)
    private let dStreamB: ActivationBuffer    // (B·S, D)
    private let dTokenEmbedded: ActivationBuffer  // (B·L, D)  (class embedding only)

    public init(config: TextConfig, training: TowerTraining, prefix: String = "text.",
                store: ParameterStore) {
        self.config = config
        self.prefix = prefix
        self.training = training
        let region = training.baseRegion, D = config.width, L = config.contextLength, S = config.sequenceLength
        let arena = store.activations
        self.arena = arena
        execution = store.execution
        let tokenRows = SampleRows(S)   // every token-level layer: S rows per report
        let scratch = BlockScratch(prefix + "scratch", width: D, mlpHidden: config.mlpHidden,
                                   rowsPerSample: tokenRows, arena: arena)   // shared by all blocks
        tokenEmbedding = TokenEmbedding(prefix + "embeddings.token_embedding",
                                        vocabularySize: config.vocabularySize, width: D,
                                        region: region, lora: training.tokenEmbeddingLoRA, store: store,
                                        rowsPerSample: tokenRows)
        positionEmbedding = store.declare(prefix + "embeddings.position_embedding.weight",
                                          shape: [S, D], region: region,
                                          initializer: .normal(std: 0.01))
        classEmbedding = config.classEmbedding
            ? store.declare(prefix + "embeddings.class_embedding", shape: [D], region: region,
                            initializer: .normal(std: 0.01))
            : nil
        blocks = (0..<config.depth).map { i in
            TransformerBlock(prefix + "encoder.layers.\(i)", width: D, heads: config.heads,
                             mlpHidden: config.mlpHidden, activation: config.activation,
                             eps: config.layerNormEps, layerScaleInit: nil, naming: config.naming,
                             qkv: config.qkvLayout, causal: true, region: region,
                             lora: training.blockLoRA, store: store, rowsPerSample: tokenRows, scratch: scratch)
        }
        finalNorm = LayerNormLayer(prefix + "final_layer_norm", features: D, eps: config.layerNormEps,
                                   region: region, store: store)
        projection = config.projectionDim.map {
            Linear(prefix + "text_projection", in: D, out: $0, bias: false, region: region,
                   lora: training.projectionLoRA, store: store)
        }
        linears = blocks.flatMap(\.linears) + (projection.map { [$0] } ?? [])
        func buffer(_ name: String, rowsPerReport: Int, width: Int) -> ActivationBuffer {
            arena.buffer(prefix + name) { $0.samples * rowsPerReport * width }
        }
        let cls = config.classEmbedding ? 1 : 0
        tokenEmbedded = buffer("token_embedded", rowsPerReport: L * cls, width: D)
        dTokenEmbedded = buffer("d_token_embedded", rowsPerReport: L * cls, width: D)
        embedded = buffer("embedded", rowsPerReport: S, width: D)
        streams = (0..<config.depth).map { buffer("encoder.layers.\($0).out", rowsPerReport: S, width: D) }
        gathered = buffer("gathered", rowsPerReport: 1, width: D)
        normed = buffer("normed", rowsPerReport: 1, width: D)
        features = buffer("features", rowsPerReport: 1, width: config.projectionDim ?? 0)
        dNormed = buffer("d_normed", rowsPerReport: 1, width: D)
        dGathered = buffer("d_gathered", rowsPerReport: 1, width: D)
        dStreamA = buffer("d_stream_a", rowsPerReport: S, width: D)
        dStreamB = buffer("d_stream_b", rowsPerReport: S, width: D)
    }

    /// Width of the returned features.
    public var outputDim: Int { config.outputDim }

    /// Analytic forward FLOPs (matrix products only) for `batch` sequences.
    public func forwardFlops(batch: Int) -> Double {
        let L = config.contextLength, S = config.sequenceLength
        var f = tokenEmbedding.forwardFlops(rows: batch * L)
        let pooledLast = lastBlockPoolsOnly
        for (i, b) in blocks.enumerated() {
            f += b.forwardFlops(batch: batch, tokens: S, oneOutput: pooledLast && i == blocks.count - 1)
        }
        if let projection { f += projection.forwardFlops(rows: batch) }
        return f
    }

    public func mergeLoRA() {
        tokenEmbedding.mergeLoRA()
        for l in linears { l.mergeLoRA() }
    }

    public func unmergeLoRA() {
        tokenEmbedding.unmergeLoRA()
        for l in linears { l.unmergeLoRA() }
    }


    /// Text features (B, outputDim) of token ids (B, L), L = `config.contextLength`. Each
    /// sequence is pooled at its first end-of-text token (the last position if it has
    /// none); tokens after it (padding) do not influence the result. The result is owned
    /// by the encoder and valid until the next forward; `tokens` must stay valid until
    /// `backward`.
    public func forward(tokens: UnsafePointer<Int32>, batch: Int) -> UnsafePointer<Float> {
        let D = config.width, L = config.contextLength, S = config.sequenceLength
        self.batch = batch
        arena.reserve(samples: batch)
        if poolPositions.count != batch { poolPositions = Array(repeating: 0, count: batch) }
        var validLengths: [Int]?
        if config.classEmbedding {
            // Pool at the class row; keys 0…n, n = the ids before the first padding id.
            validLengths = (0..<batch).map { b in
                var n = 0
                while n < L, tokens[b * L + n] != 0 { n += 1 }
                return n + 1
            }
            for b in 0..<batch { poolPositions[b] = L }
        } else {
            for b in 0..<batch {
                var position = L - 1
                for t in 0..<L where tokens[b * L + t] == config.endOfTextId { position = t; break }
                poolPositions[b] = position
            }
            if config.keyPaddingAfterEndOfText { validLengths = poolPositions.map { $0 + 1 } }
        }
        for block in blocks { block.attention.setKeyPadding(validLengths: validLengths, tokens: S) }

        if let classEmbedding {
            tokenEmbedding.forward(tokens, tokenEmbedded.data, rows: batch * L)
            for b in 0..<batch {   // [ids ; cls]  (S, D) per sequence
                (embedded.data + b * S * D).update(from: tokenEmbedded.data + b * L * D, count: L * D)
                (embedded.data + (b * S + L) * D).update(from: classEmbedding.value, count: D)
            }
        } else {
            tokenEmbedding.forward(tokens, embedded.data, rows: batch * L)
        }
        addPositionEmbedding(embedded.data, positionEmbedding.value, batch: batch, tokens: S, width: D)
        var x = UnsafePointer(embedded.data)
        pooledOnly = lastBlockPoolsOnly
        for (i, (block, out)) in zip(blocks, streams).enumerated() {
            let outputs = pooledOnly && i == blocks.count - 1 ? poolPositions : nil
            block.forward(x, out.data, batch: batch, tokens: S, outputs: outputs)
            x = UnsafePointer(out.data)
        }
        for b in 0..<batch {   // the last block's output: the pooled rows only, or every token
            let row = pooledOnly ? b : b * S + poolPositions[b]
            (gathered.data + b * D).update(from: x + row * D, count: D)
        }
        finalNorm.forward(gathered.data, normed.data, rows: batch)
        guard let projection else { return UnsafePointer(normed.data) }
        projection.forward(normed.data, features.data, rows: batch)
        return UnsafePointer(features.data)
    }

    /// Adds parameter gradients given dFeatures (B, outputDim).
    public func backward(dFeatures: UnsafePointer<Float>) {
        let D = config.width, L = config.contextLength, S = config.sequenceLength, rows = batch * S
        if let projection {
            dNormed.data.update(repeating: 0, count: batch * D)
            projection.backward(dFeatures, dx: dNormed.data)
        } else {
            dNormed.data.update(from: dFeatures, count: batch * D)
        }
        dGathered.data.update(repeating: 0, count: batch * D)
        finalNorm.backward(dNormed.data, dx: dGathered.data)
        var dX = dStreamA, dPrevious = dStreamB   // (B·L, D) each
        zeroFill(dX.data, count: rows * D, workers: execution.rowWorkers)
        for b in 0..<batch {
            let row = pooledOnly ? b : b * S + poolPositions[b]
            (dX.data + row * D).update(from: dGathered.data + b * D, count: D)
        }
        for block in blocks.reversed() {
            block.backward(dX.data, dx: dPrevious.data, accumulate: false)
            swap(&dX, &dPrevious)
        }
        if let g = positionEmbedding.gradient {
            positionEmbeddingBackward(dX.data, g, batch: batch, tokens: S, width: D)
        }
        guard let classEmbedding else { tokenEmbedding.backward(dX.data); return }
        // d cls += Σ_b dX[b, L];  the id rows go back through the token embedding.
        for b in 0..<batch {
            if let g = classEmbedding.gradient { axpy(1, dX.data + (b * S + L) * D, g, count: D) }
            (dTokenEmbedded.data + b * L * D).update(from: dX.data + b * S * D, count: L * D)
        }
        tokenEmbedding.backward(dTokenEmbedded.data)
    }
}
