import Kernels

/// The batch an arena is sized for: this rank's samples (images or reports) and the
/// samples of the whole global batch (losses that see every rank's rows, InfoNCE).
public struct ActivationShape: Equatable, Sendable {
    public var samples: Int
    public var globalSamples: Int

    public init(samples: Int, globalSamples: Int) {
        self.samples = samples
        self.globalSamples = globalSamples
    }
}

/// Rows of a layer's input per sample: T tokens of a sequence, N patches, 1 for a pooled
/// feature. The tower that owns a layer shares one with all its token-level layers; a
/// layer used on its own sets it from its forward's arguments.
public final class SampleRows {
    public internal(set) var count: Int

    public init(_ count: Int = 1) { self.count = count }
}

/// One activation buffer of a model, pointed into its arena's single allocation: `data`
/// holds `count` floats once the arena is reserved (zero-filled when it is sized) and
/// stays valid until the arena grows.
public final class ActivationBuffer {
    public let name: String
    public fileprivate(set) var data = UnsafeMutablePointer<Float>(bitPattern: 16)!
    public fileprivate(set) var count = 0
    fileprivate var size: (ActivationShape) -> Int

    fileprivate init(name: String, size: @escaping (ActivationShape) -> Int) {
        self.name = name
        self.size = size
    }
}

/// Every activation buffer of a model in one allocation, sized up front for a batch (llm.c's
/// `malloc_and_point_activations`). Layers declare their buffers when they are built, each
/// with its size as a function of the batch; `reserve` sizes all of them at once, so what
/// owns every buffer and how large it is can be listed (`buffers`). The trainer reserves the
/// largest batch it will use before the first step; a model's entry points reserve too, so
/// a model used on its own still works, and nothing is allocated in the step loop.
///
/// The arena only grows: a larger batch re-plans it (every buffer moves and is zeroed),
/// which must happen before a forward, never between a forward and its backward — every
/// entry point reserves first, so nested layers find their buffers in place.
public final class ActivationArena {
    private var declared: [ActivationBuffer] = []
    private var block: UnsafeMutablePointer<Float>?
    private var blockCount = 0
    /// The shape the buffers are sized for; nil before the first `reserve`.
    public private(set) var shape: ActivationShape?
    /// A buffer was declared or a layer's rows per sample changed since the last plan.
    private var isStale = false
    /// BLAS threads when planned: per-worker scratch (attention heads) is sized by them.
    private var plannedThreads = 0

    public init() {}

    deinit { block?.deallocate() }

    /// Declares a buffer of `size(shape)` floats; it is placed by the next `reserve`.
    public func buffer(_ name: String, size: @escaping (ActivationShape) -> Int) -> ActivationBuffer {
        let buffer = ActivationBuffer(name: name, size: size)
        declared.append(buffer)
        isStale = true
        return buffer
    }

    /// A scratch buffer shared by every layer that asks for `name`, sized for the largest of
    /// their requests: for work inside one call (never kept from a forward to its backward).
    public func sharedBuffer(_ name: String, size: @escaping (ActivationShape) -> Int) -> ActivationBuffer {
        guard let existing = declared.first(where: { $0.name == name }) else { return buffer(name, size: size) }
        let previous = existing.size
        existing.size = { max(previous($0), size($0)) }
        isStale = true
        return existing
    }

    /// Marks the plan out of date (a setting that sizes buffers changed); the next
    /// `reserve` allocates anew. Only between steps: buffers written so far are lost.
    public func invalidate() { isStale = true }

    /// Every declared buffer with its current size, in declaration order.
    public var buffers: [(name: String, count: Int)] { declared.map { ($0.name, $0.count) } }

    /// Floats in the arena's allocation.
    public var floatCount: Int { blockCount }

    /// Makes every buffer hold at least what a batch of `samples` local samples (and
    /// `globalSamples` over all ranks, default `samples`) needs; a no-op when the arena
    /// already fits.
    @inline(__always)
    public func reserve(samples: Int, globalSamples: Int? = nil) {
        let global = globalSamples ?? samples
        if let shape, !isStale, samples <= shape.samples, global <= shape.globalSamples,
           plannedThreads == BLASRuntime.threads {
            return
        }
        plan(ActivationShape(samples: max(samples, shape?.samples ?? 0),
                             globalSamples: max(global, shape?.globalSamples ?? 0)))
    }

    /// `reserve(samples:)` for a layer whose rows per sample come with the call (a sequence
    /// length, a patch count): `rows` takes `count`, and a change re-plans the arena. Inside
    /// a tower the count is the tower's, so nothing changes.
    public func reserve(samples: Int, rows: SampleRows, perSample count: Int) {
        if rows.count != count {
            rows.count = count
            isStale = true
        }
        reserve(samples: samples)
    }

    /// One zero-filled allocation for every buffer at `shape`; each buffer's start is
    /// aligned to 16 floats (64 bytes).
    private func plan(_ shape: ActivationShape) {
        let counts = declared.map { max($0.size(shape), 0) }
        let aligned = counts.map { ($0 + 15) / 16 * 16 }
        let total = aligned.reduce(0, +)
        block?.deallocate()
        let allocation = UnsafeMutablePointer<Float>.allocate(capacity: max(total, 1))
        allocation.initialize(repeating: 0, count: max(total, 1))
        var offset = 0
        for (buffer, (count, span)) in zip(declared, zip(counts, aligned)) {
            buffer.data = allocation + offset
            buffer.count = count
            offset += span
        }
        block = allocation
        blockCount = total
        self.shape = shape
        plannedThreads = BLASRuntime.threads
        isStale = false
    }
}

/// The samples `rows` rows make at `per` rows per sample (rounded up): what a layer used on
/// its own reserves.
@inline(__always)
func samples(rows: Int, per: SampleRows) -> Int { (rows + per.count - 1) / per.count }
