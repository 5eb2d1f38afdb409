import Kernels
import Model

/// Which inputs a model reads.
public struct ModelInputs: OptionSet, Sendable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    /// Normalised images (B, 3, S, S).
    public static let images = ModelInputs(rawValue: 1)
    /// Token ids (B, L) of each image's paired report.
    public static let tokens = ModelInputs(rawValue: 2)
}

/// This rank's slice of one global batch, in the layouts the models expect. The pointers
/// are owned by the caller (the `BatchAssembler`) and stay valid for the call.
public struct ModelBatch {
    /// B, the number of local samples (at least 1: an empty slice never reaches a model).
    public var count: Int
    /// Normalised images, NCHW `(B, 3, S, S)`; nil when the model reads no images.
    public var images: UnsafePointer<Float>?
    /// Token ids of the paired reports, `(B, L)`; nil when the model reads no text.
    public var tokens: UnsafePointer<Int32>?
    /// Class labels `(B)` in `0..<C`; nil for inference.
    public var labels: UnsafePointer<Int32>?

    public init(count: Int, images: UnsafePointer<Float>?, tokens: UnsafePointer<Int32>?,
                labels: UnsafePointer<Int32>?) {
        self.count = count
        self.images = images
        self.tokens = tokens
        self.labels = labels
    }
}

/// What the data-parallel trainer drives: a model whose trainable parameters and their
/// gradients live in one flat `ParameterStore` buffer.
///
/// Contract (the same as the models of the Model module):
/// - `forwardBackward` *adds* ∂L/∂θ into `store.gradients` (the trainer zeroes them once
///   per step) and divides every per-sample term by `globalBatch`, the size of the whole
///   global batch over all ranks. The sum over ranks of the gradients and of the returned
///   losses is then the gradient and the loss of the global batch.
/// - `predict` runs in evaluation mode (no dropout) and returns logits `(B, C)` owned by
///   the model, valid until its next forward.
/// - `mergeLoRA` folds every LoRA update into its base weight for inference; training is
///   not possible afterwards.
public protocol TrainableModel: AnyObject {
    /// All parameters; `store.trainable` / `store.gradients` are what the optimiser and
    /// the gradient allreduce work on.
    var store: ParameterStore { get }
    /// C, the number of classes.
    var classes: Int { get }
    /// The inputs `forwardBackward` reads.
    var trainingInputs: ModelInputs { get }
    /// The inputs `predict` reads (images only for every image model: Stage 3 is
    /// image-only; tokens for the text-only classifier).
    var predictionInputs: ModelInputs { get }
    /// Training mode (LoRA dropout on) or evaluation mode.
    var isTraining: Bool { get set }
    /// Sets the stream the LoRA dropout masks are drawn from (once per step).
    func setDropoutStream(_ stream: DropoutStream)
    /// One training forward and backward on `batch` (labels required).
    func forwardBackward(_ batch: ModelBatch, globalBatch: Int) -> LossBreakdown
    /// Logits `(B, C)` in evaluation mode.
    func predict(_ batch: ModelBatch) -> UnsafePointer<Float>
    /// Folds LoRA into the base weights (inference).
    func mergeLoRA()
    /// D, the width of the paired-report embeddings t the last `forwardBackward` computed;
    /// 0 for models without a text tower in their loss.
    var textEmbeddingWidth: Int { get }
    /// Adds Σᵢ tᵢ/‖tᵢ‖ over the last `forwardBackward`'s local rows into `sum` (D floats):
    /// the text-collapse diagnostic (`meanPairwiseCosine`).
    func addUnitTextEmbeddings(into sum: UnsafeMutablePointer<Float>)
}

extension TrainableModel {
    public var textEmbeddingWidth: Int { 0 }
    public func addUnitTextEmbeddings(into sum: UnsafeMutablePointer<Float>) {}
}

/// The mean cosine similarity over all pairs i ≠ j of n unit vectors, from their sum
/// S = Σ uᵢ alone: ‖S‖² = n + Σ_{i≠j} uᵢ·uⱼ, so the mean is (‖S‖² − n) / (n(n − 1)).
/// 1 when every vector points the same way (a collapsed text tower), about 0 for
/// unrelated directions. nil for fewer than two vectors.
public func meanPairwiseCosine(sumOfUnitVectors sum: UnsafePointer<Float>, width: Int, count n: Int) -> Double? {
    guard n >= 2 else { return nil }
    var squared = 0.0
    for k in 0..<width { squared += Double(sum[k]) * Double(sum[k]) }
    return (squared - Double(n)) / (Double(n) * Double(n - 1))
}

extension TrainableModel {
    /// A 64-bit FNV-1a hash of the bits of every parameter, trainable then frozen: equal
    /// on two ranks exactly when their weights are bit-identical (up to hash collisions).
    public func weightChecksum() -> UInt64 {
        fnv1a(store.frozen, continuing: fnv1a(store.trainable))
    }
}

/// 64-bit FNV-1a over the bit patterns of `tensor`'s floats, continuing from `h`
/// (the FNV offset basis by default).
func fnv1a(_ tensor: Tensor, continuing h: UInt64 = 0xCBF2_9CE4_8422_2325) -> UInt64 {
    var h = h
    for i in 0..<tensor.count { h = (h ^ UInt64(tensor.data[i].bitPattern)) &* 0x0000_0100_0000_01B3 }
    return h
}
