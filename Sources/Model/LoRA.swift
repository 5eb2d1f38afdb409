import Kernels

/// Low-rank adaptation settings (Hu et al. 2021, as PEFT implements it):
/// `y = W x + b + (α/r) · B A dropout(x)` with A random (Kaiming-uniform), B = 0.
public struct LoRAConfig: Sendable, Equatable, Codable {
    /// Rank r of the update.
    public var rank: Int
    /// Scaling numerator α; the update is scaled by α/r.
    public var alpha: Float
    /// Dropout probability on the LoRA input (0 disables it).
    public var dropout: Float

    public init(rank: Int = 16, alpha: Float = 8, dropout: Float = 0) {
        precondition(rank >= 1, "LoRA rank must be at least 1")
        precondition(dropout >= 0 && dropout < 1, "LoRA dropout must be in [0, 1)")
        self.rank = rank
        self.alpha = alpha
        self.dropout = dropout
    }

    /// α / r.
    public var scale: Float { alpha / Float(rank) }
}

/// Deterministic dropout masks for LoRA inputs.
///
/// A row's mask depends only on (seed, layer, step, global row index), never on the rank
/// that computes it, so a run's trajectory does not depend on how the batch is split.
public struct DropoutStream: Sendable {
    public var seed: UInt64
    public var step: UInt64
    /// Global index of this rank's first row in the current batch.
    public var firstGlobalRow: Int

    public init(seed: UInt64, step: UInt64 = 0, firstGlobalRow: Int = 0) {
        self.seed = seed
        self.step = step
        self.firstGlobalRow = firstGlobalRow
    }

    /// A generator for one row of one layer; `row` counts from the first row of the
    /// global batch (`firstGlobalRow` is added by the caller, scaled to its rows).
    func generator(layer: UInt64, row: Int) -> RandomGenerator {
        var h = seed &* 0x9E37_79B9_7F4A_7C15
        h ^= layer &+ 0x632B_E59B_D9B4_E019 &+ (h << 6) &+ (h >> 2)
        h ^= step &+ 0x8CB9_2BA7_2F3D_8DD7 &+ (h << 6) &+ (h >> 2)
        h ^= UInt64(row) &+ 0x5851_F42D_4C95_7F2D &+ (h << 6) &+ (h >> 2)
        return RandomGenerator(seed: h)
    }
}

/// How a model executes, shared by every layer declared in one `ParameterStore`
/// (`store.execution`): the data-parallel step sets the dropout stream once per step, and
/// the layers read these values when they run. No per-step state is pushed into layers,
/// and nothing here is global: each model has its own.
public final class ModelExecution {
    /// The step's LoRA-dropout stream; `firstGlobalRow` is the global index of this rank's
    /// first *sample* (image or report) in the batch. Each Linear offsets it by its own
    /// rows per sample when it draws a mask.
    public var dropout = DropoutStream(seed: 0)
    /// Whether the model may split its work over as many workers as BLAS threads:
    /// attention runs its heads on them, each with single-threaded GEMMs
    /// (`MultiHeadAttention.forEachHead`), and the row-wise kernels between the GEMMs
    /// (norms, activations, residuals, bias, zeroing) run on contiguous row ranges
    /// (`concurrentChunks`); results are bit-identical either way. Only for a process
    /// whose BLAS calls all come from the thread that runs the model, as with one rank per
    /// `clipit` process: changing OpenBLAS's thread count while another thread is inside a
    /// BLAS call corrupts its buffers (seen with the thread ranks of the tests).
    public var parallelWorkers = false

    /// The workers for row-wise kernels: the BLAS thread count with `parallelWorkers`, else 1.
    public var rowWorkers: Int { parallelWorkers ? max(1, BLASRuntime.threads) : 1 }

    /// What attention keeps of its probabilities for the backward (`AttentionProbabilities`).
    /// It sizes the activations: change it between steps, not inside one.
    public var attentionProbabilities = AttentionProbabilities.stored {
        didSet { arena?.invalidate() }
    }

    /// The store's activations (re-planned when a setting that sizes them changes).
    weak var arena: ActivationArena?

    public init() {}
}

/// FNV-1a hash of a string: a stable (process-independent) identifier for a layer name.
@inline(__always)
func stableHash(_ s: String) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
    return h
}
