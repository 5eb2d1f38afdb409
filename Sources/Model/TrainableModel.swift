import Kernels

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
    /// The paired reports' embeddings t `(B, D)` from a frozen text tower computed once per
    /// run (`CLIPITModel.embedReports`); when given, the model reads them instead of
    /// running its text tower on `tokens`.
    public var textEmbeddings: UnsafePointer<Float>?
    /// What the distillation terms beyond the reference read (nil for every other model).
    public var distillation: DistillationInputs?

    public init(count: Int, images: UnsafePointer<Float>?, tokens: UnsafePointer<Int32>?,
                labels: UnsafePointer<Int32>?, textEmbeddings: UnsafePointer<Float>? = nil,
                distillation: DistillationInputs? = nil) {
        self.count = count
        self.images = images
        self.tokens = tokens
        self.labels = labels
        self.textEmbeddings = textEmbeddings
        self.distillation = distillation
    }
}

/// The inputs of CLIP-IT's collapse-free distillation terms (`DistillationTerms`) for
/// this rank's rows of a global batch; pointers owned by the caller, valid for the call.
public struct DistillationInputs {
    /// The number of labelled rows in the whole global batch: the cross-entropy terms'
    /// normaliser (rows with label −1 are unlabelled and join the distillation terms only,
    /// which are divided by the whole global batch).
    public var labelledInGlobalBatch: Int
    /// The teachers' logits s `(B, C)` for the soft-target term; nil without one.
    public var teacherLogits: UnsafePointer<Float>?
    /// The targets t `(N, D)` of every row of the global batch, and their ids `(N)`
    /// (rows with equal ids — images paired with the same report — are positives of each
    /// other in the contrastive term); nil without one.
    public var batchTargets: UnsafePointer<Float>?
    public var batchTargetIDs: UnsafePointer<Int32>?
    public var batchTargetCount: Int
    /// The id of each of this rank's rows `(B)`.
    public var rowIDs: UnsafePointer<Int32>?

    public init(labelledInGlobalBatch: Int, teacherLogits: UnsafePointer<Float>? = nil,
                batchTargets: UnsafePointer<Float>? = nil, batchTargetIDs: UnsafePointer<Int32>? = nil,
                batchTargetCount: Int = 0, rowIDs: UnsafePointer<Int32>? = nil) {
        self.labelledInGlobalBatch = labelledInGlobalBatch
        self.teacherLogits = teacherLogits
        self.batchTargets = batchTargets
        self.batchTargetIDs = batchTargetIDs
        self.batchTargetCount = batchTargetCount
        self.rowIDs = rowIDs
    }
}

/// An encoder of a model: the vision or the text transformer. Models are built from
/// towers and heads; `TowerModel` writes the mode and LoRA merging once for all of them.
public protocol Tower: AnyObject {
    /// Parameter-name prefix (`vision.`, `text.`).
    var prefix: String { get }
    /// Training mode (LoRA dropout on) or evaluation mode.
    var isTraining: Bool { get set }
    /// Folds every LoRA update into its base weight (W ← W + (α/r)·B A).
    func mergeLoRA()
    /// Undoes `mergeLoRA` (up to float rounding).
    func unmergeLoRA()
}

extension VisionTransformer: Tower {}
extension TextTransformer: Tower {}

/// The skeleton every model shares, written once: all parameters in one
/// `ParameterStore`, built from `towers` (plus heads that have no mode).
public protocol TowerModel: AnyObject {
    /// All parameters; `store.trainable` / `store.gradients` are what the optimiser and
    /// the gradient allreduce work on, `store.execution` the step's LoRA-dropout stream.
    var store: ParameterStore { get }
    /// The model's towers, in parameter order.
    var towers: [any Tower] { get }
}

extension TowerModel {
    /// Training mode (LoRA dropout on) or evaluation mode, for every tower.
    public var isTraining: Bool {
        get { towers.first?.isTraining ?? false }
        set { for tower in towers { tower.isTraining = newValue } }
    }

    /// Folds LoRA into the base weights of every tower for inference, so it costs what
    /// the plain backbone costs; training is not possible until `unmergeLoRA`.
    public func mergeLoRA() { for tower in towers { tower.mergeLoRA() } }

    /// Undoes `mergeLoRA` (up to float rounding).
    public func unmergeLoRA() { for tower in towers { tower.unmergeLoRA() } }

    /// Sizes every activation buffer for batches of up to `batch` local samples (and
    /// `globalBatch` over all ranks) in one allocation, before the first step: nothing is
    /// allocated in the step loop afterwards.
    public func reserveActivations(batch: Int, globalBatch: Int? = nil) {
        store.activations.reserve(samples: batch, globalSamples: globalBatch)
    }

    /// Runs `body` in evaluation mode (no LoRA dropout) and restores the mode after.
    public func inEvaluationMode<R>(_ body: () throws -> R) rethrows -> R {
        let wasTraining = isTraining
        if wasTraining { isTraining = false }
        defer { if wasTraining { isTraining = true } }
        return try body()
    }

    /// A 64-bit FNV-1a hash of the bits of every parameter, trainable then frozen: equal
    /// on two ranks exactly when their weights are bit-identical (up to hash collisions).
    public func weightChecksum() -> UInt64 {
        fnv1a(store.frozen, continuing: fnv1a(store.trainable))
    }
}

/// A classifier the data-parallel step trains: the CLIP-IT model and its ablations, the
/// unimodal baselines and the text-only classifier all conform directly.
///
/// Contract:
/// - `forwardBackward` *adds* ∂L/∂θ into `store.gradients` and divides every per-sample
///   term by `globalBatch`, the size of the whole global batch over all ranks. The sum
///   over ranks of the gradients and of the returned losses is then the gradient and the
///   loss of the global batch. LoRA dropout reads `store.execution.dropout`, set by the step.
/// - `predict` runs in evaluation mode (no dropout) and returns logits `(B, C)` owned by
///   the model, valid until its next forward.
public protocol TrainableModel: TowerModel {
    /// C, the number of classes.
    var classes: Int { get }
    /// The inputs `forwardBackward` reads.
    var trainingInputs: ModelInputs { get }
    /// The inputs `predict` reads (images only for every image model: Stage 3 is
    /// image-only; tokens for the text-only classifier).
    var predictionInputs: ModelInputs { get }
    /// One training forward and backward on `batch` (labels required).
    func forwardBackward(_ batch: ModelBatch, globalBatch: Int) -> LossBreakdown
    /// Logits `(B, C)` in evaluation mode.
    func predict(_ batch: ModelBatch) -> UnsafePointer<Float>
    /// D, the width of the paired-report embeddings t in the loss; 0 for models without
    /// a text tower in their loss.
    var textEmbeddingWidth: Int { get }
    /// t `(B, D)` of the last `forwardBackward`, for the text-collapse diagnostic; nil
    /// for models without a text tower in their loss.
    var textEmbeddings: UnsafePointer<Float>? { get }
}

extension TrainableModel {
    public var textEmbeddingWidth: Int { 0 }
    public var textEmbeddings: UnsafePointer<Float>? { nil }
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

/// 64-bit FNV-1a over the bit patterns of `tensor`'s floats, continuing from `h`
/// (the FNV offset basis by default).
public func fnv1a(_ tensor: Tensor, continuing h: UInt64 = 0xCBF2_9CE4_8422_2325) -> UInt64 {
    var h = h
    for i in 0..<tensor.count { h = (h ^ UInt64(tensor.data[i].bitPattern)) &* 0x0000_0100_0000_01B3 }
    return h
}
