import Foundation
import Kernels

/// Everything that defines a CLIP-style retriever (CLIP-IT.md, Setting: f_v, f_t).
///
/// Both towers must project to the same embedding width (`vision.projectionDim ==
/// text.projectionDim`): similarities are cosines between the two projections.
public struct RetrieverConfig: Codable, Equatable, Sendable {
    public var vision: VisionConfig
    public var text: TextConfig
    /// Full fine-tuning (the default for pretraining from scratch), LoRA, or frozen, per tower.
    public var visionTraining: TowerTraining
    public var textTraining: TowerTraining
    /// Whether `logit_scale` (s, the inverse temperature's log) is learned.
    public var trainLogitScale: Bool
    /// Initial s; CLIP uses ln(1/0.07).
    public var initialLogitScale: Float

    public init(vision: VisionConfig, text: TextConfig,
                visionTraining: TowerTraining = .fullFineTune, textTraining: TowerTraining = .fullFineTune,
                trainLogitScale: Bool = true,
                initialLogitScale: Float = SymmetricInfoNCELoss.initialLogitScale) {
        self.vision = vision
        self.text = text
        self.visionTraining = visionTraining
        self.textTraining = textTraining
        self.trainLogitScale = trainLogitScale
        self.initialLogitScale = initialLogitScale
    }

    /// The shared embedding width.
    public var embeddingDim: Int { vision.outputDim }

    /// Throws when the towers cannot be compared (different output widths, no projection).
    public func validate() throws {
        guard vision.projectionDim != nil, text.projectionDim != nil else {
            throw RetrieverError("both towers need a projection (vision.projectionDim and text.projectionDim)")
        }
        guard vision.outputDim == text.outputDim else {
            throw RetrieverError("the towers project to different widths (vision \(vision.outputDim), "
                                     + "text \(text.outputDim)); set both projectionDim to the same value")
        }
    }

    /// The same architecture with both towers frozen and no LoRA: how an exported
    /// retriever (LoRA already merged) is rebuilt for inference.
    public var inference: RetrieverConfig {
        var c = self
        c.visionTraining = .frozen
        c.textTraining = .frozen
        c.trainLogitScale = false
        return c
    }

    /// A small retriever for the synthetic benchmark and tests: a ViT with patch
    /// `imageSize / 8`, `width` wide, `depth` blocks, and a CLIP text tower of the same
    /// width over a word vocabulary, both projecting to `embeddingDim`.
    public static func small(imageSize: Int, vocabularySize: Int, contextLength: Int, endOfTextId: Int32,
                             width: Int = 64, depth: Int = 2, heads: Int = 4,
                             embeddingDim: Int = 64) -> RetrieverConfig {
        let patch = max(imageSize / 8, 1)
        let vision = VisionConfig(imageSize: imageSize, patchSize: patch, width: width, depth: depth,
                                  heads: heads, mlpHidden: 2 * width, activation: .gelu, layerNormEps: 1e-6,
                                  layerScaleInit: nil, preNorm: true, pooling: .cls,
                                  projectionDim: embeddingDim, patchBias: false)
        let text = TextConfig(vocabularySize: vocabularySize, contextLength: contextLength, width: width,
                              depth: depth, heads: heads, mlpHidden: 2 * width, activation: .quickGELU,
                              layerNormEps: 1e-5, projectionDim: embeddingDim, endOfTextId: endOfTextId)
        return RetrieverConfig(vision: vision, text: text)
    }
}

/// A retriever that cannot be built, loaded or trained as asked.
public struct RetrieverError: Error, CustomStringConvertible, Sendable {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { "retriever: \(reason)" }
}

/// A CLIP-style image–text model: an image tower f_v and a text tower f_t, each ending in
/// a projection to the shared width D, and the learnable logit scale s, trained with
/// CLIP's symmetric InfoNCE over the global batch (`SymmetricInfoNCELoss`).
///
///     I = f_v(images)  (B, D)      T = f_t(tokens)  (B, D)
///     L = (1/2N) Σ_i [ −log softmax_j(e^s Î_i·T̂_j)_i − log softmax_j(e^s Î_j·T̂_i)_i ]
///
/// All parameters live in one `ParameterStore` (`vision.*`, `text.*`, `logit_scale`), so
/// the trainable ones are one flat buffer that the data-parallel step reduces with one
/// allreduce. Names follow docs/model-contract.md; `logit_scale` is CLIP's.
///
/// Data parallelism (`forwardBackward(rows:…)`): each rank embeds its local slice, the
/// ranks all-gather both embedding matrices (rank order = global batch order), each rank
/// computes the loss terms of its rows against all N columns and the *complete* gradient
/// of its own embedding rows (from every row and column they appear in), and
/// back-propagates that through its own towers. After the allreduce (sum) of the flat
/// gradient every rank holds exactly the single-rank gradient of the global batch; see
/// docs/retriever.md.
public final class RetrieverModel: TowerModel {
    public let config: RetrieverConfig
    public let store: ParameterStore
    public let vision: VisionTransformer
    public let text: TextTransformer
    /// s, `logit_scale` `()`: the similarities are multiplied by e^min(s, ln 100).
    public let logitScale: Parameter
    public let loss: SymmetricInfoNCELoss

    private let visionTrains: Bool
    private let textTrains: Bool
    private let gatheredImages: ActivationBuffer   // (N, D)
    private let gatheredTexts: ActivationBuffer    // (N, D)
    private let dImages: ActivationBuffer          // (B, D) ∂L/∂I of the local rows
    private let dTexts: ActivationBuffer           // (B, D) ∂L/∂T of the local rows

    /// Builds both towers and the logit scale and initialises them from `seed`
    /// (declaration order: vision, text, logit scale), so every rank gets bit-identical
    /// weights.
    public init(_ config: RetrieverConfig, seed: UInt64) throws {
        try config.validate()
        self.config = config
        let store = ParameterStore()
        self.store = store
        vision = VisionTransformer(config: config.vision, training: config.visionTraining, store: store)
        text = TextTransformer(config: config.text, training: config.textTraining, store: store)
        logitScale = store.declare("logit_scale", shape: [], region: config.trainLogitScale ? .trainable : .frozen,
                                   initializer: .constant(config.initialLogitScale))
        let arena = store.activations, d = config.embeddingDim
        loss = SymmetricInfoNCELoss(width: d, arena: arena)
        gatheredImages = arena.buffer("model.gathered_images") { $0.globalSamples * d }
        gatheredTexts = arena.buffer("model.gathered_texts") { $0.globalSamples * d }
        dImages = arena.buffer("model.d_images") { $0.samples * d }
        dTexts = arena.buffer("model.d_texts") { $0.samples * d }
        store.allocate(seed: seed)
        let visionPrefix = vision.prefix, textPrefix = text.prefix
        visionTrains = store.hasTrainableParameters(prefix: visionPrefix)
        textTrains = store.hasTrainableParameters(prefix: textPrefix)
    }

    /// D, the width of both embeddings.
    public var embeddingDim: Int { config.embeddingDim }

    public var towers: [any Tower] { [vision, text] }


    // MARK: - Training

    /// One data-parallel forward and backward of the symmetric InfoNCE over a global batch.
    ///
    /// Every rank calls it with its local slice (`batch` pairs, possibly 0): images
    /// `(B, 3, S, S)` normalised NCHW and token ids `(B, L)` of the paired reports. The
    /// ranks' slices, in rank order, form the global batch of N pairs (`rows.counts`).
    /// Adds this rank's part of ∂L/∂θ into `store.gradients` (the caller zeroes them per
    /// step and sums them over ranks with one allreduce) and returns this rank's share of
    /// the loss (the sum over ranks is L). Collectives: two `rows.allgatherv` of the
    /// embeddings.
    @discardableResult
    public func forwardBackward(images: UnsafePointer<Float>?, tokens: UnsafePointer<Int32>?, batch: Int,
                                rows: RowExchange) throws -> Float {
        let d = embeddingDim
        let counts = rows.counts                                       // pairs per rank
        precondition(counts.indices.contains(rows.rank) && counts[rows.rank] == batch,
                     "RetrieverModel.forwardBackward: slice counts \(counts) do not match rank \(rows.rank)'s batch \(batch)")
        let n = counts.reduce(0, +)
        precondition(n > 0, "RetrieverModel.forwardBackward: the global batch is empty")
        let first = counts[..<rows.rank].reduce(0, +)
        store.activations.reserve(samples: batch, globalSamples: n)

        // Local embeddings (B, D) each; an empty slice contributes zero rows.
        var localImages: UnsafePointer<Float>? = nil, localTexts: UnsafePointer<Float>? = nil
        if batch > 0 {
            guard let images, let tokens else {
                preconditionFailure("RetrieverModel.forwardBackward: images and tokens are required")
            }
            localImages = vision.forward(images: images, batch: batch)
            localTexts = text.forward(tokens: tokens, batch: batch)
        }
        let rowCounts = counts.map { $0 * d }
        try rows.allgatherv(UnsafeBufferPointer(start: localImages, count: batch * d), rowCounts,
                            UnsafeMutableBufferPointer(start: gatheredImages.data, count: n * d))
        try rows.allgatherv(UnsafeBufferPointer(start: localTexts, count: batch * d), rowCounts,
                            UnsafeMutableBufferPointer(start: gatheredTexts.data, count: n * d))

        // Loss rows of this slice against all N columns; full gradient of the local rows.
        let localRows = first ..< first + batch
        let value = loss.forward(image: gatheredImages.data, text: gatheredTexts.data, rows: n, localRows: localRows,
                                 logitScale: logitScale.value.pointee)
        guard batch > 0 else { return value }
        dImages.data.update(repeating: 0, count: batch * d)
        dTexts.data.update(repeating: 0, count: batch * d)
        loss.backward(dImage: visionTrains ? dImages.data : nil, dText: textTrains ? dTexts.data : nil,
                      dLogitScale: logitScale.gradient)
        if visionTrains { vision.backward(dFeatures: dImages.data, dImages: nil) }
        if textTrains { text.backward(dFeatures: dTexts.data) }
        return value
    }

    // MARK: - Inference

    /// Image embeddings `(B, D)` of one batch, in evaluation mode; L2-normalised rows when
    /// `normalize` (a zero row stays zero).
    public func embedImages(_ images: UnsafePointer<Float>, batch: Int, normalize: Bool = true) -> [Float] {
        inEvaluationMode {
            let out = vision.forward(images: images, batch: batch)
            let rows = Array(UnsafeBufferPointer(start: out, count: batch * embeddingDim))
            return normalize ? l2NormalizedRows(rows, dimension: embeddingDim) : rows
        }
    }

    /// Text embeddings `(B, D)` of token ids `(B, L)`, in evaluation mode; L2-normalised
    /// rows when `normalize`.
    public func embedTexts(_ tokens: UnsafePointer<Int32>, batch: Int, normalize: Bool = true) -> [Float] {
        inEvaluationMode {
            let out = text.forward(tokens: tokens, batch: batch)
            let rows = Array(UnsafeBufferPointer(start: out, count: batch * embeddingDim))
            return normalize ? l2NormalizedRows(rows, dimension: embeddingDim) : rows
        }
    }
}

/// How the ranks of a data-parallel batch share rows, for losses that need every rank's
/// rows (InfoNCE negatives): this rank's index, every rank's row count in rank order, and
/// an all-gather of variable-sized blocks in rank order (`Communicator.allgatherv`; the
/// DataParallel module builds one from a communicator). The model itself knows no MPI.
public struct RowExchange {
    public var rank: Int
    public var counts: [Int]
    /// (local rows, every rank's element count, destination of all ranks' elements).
    public var allgatherv: (UnsafeBufferPointer<Float>, [Int], UnsafeMutableBufferPointer<Float>) throws -> Void

    public init(rank: Int, counts: [Int],
                allgatherv: @escaping (UnsafeBufferPointer<Float>, [Int], UnsafeMutableBufferPointer<Float>) throws -> Void) {
        self.rank = rank
        self.counts = counts
        self.allgatherv = allgatherv
    }
}
