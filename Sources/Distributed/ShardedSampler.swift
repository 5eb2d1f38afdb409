import Kernels

/// Which items each rank processes, batch by batch, in one epoch.
///
/// **Global order.** With `shuffle`, epoch `e` visits the items `0..<itemCount` in the
/// permutation made by a Fisher–Yates shuffle of the identity (for `i` from `n-1` down
/// to `1`, swap positions `i` and `j`, `j` uniform in `0...i`) driven by
/// `Kernels.RandomGenerator` (SplitMix64) seeded with `mix(seed ^ mix(UInt64(e)))`, where
/// `mix` is the SplitMix64 output function:
///
///     var g = RandomGenerator(seed: mix(seed ^ mix(UInt64(e))))
///     for i in stride(from: n - 1, through: 1, by: -1) { order.swapAt(i, g.nextInt(upperBound: i + 1)) }
///
/// Without `shuffle` the order is the identity. The global order depends only on `(itemCount, seed, epoch)`, never on the rank count.
///
/// **Global batches.** The global order is cut into consecutive global batches of
/// `globalBatchSize` items. If `itemCount` is not a multiple of it, the last batch is
/// partial: `dropLast` drops it (training: every optimiser step sees a full batch),
/// otherwise it is kept with fewer items (evaluation: nothing is missed).
///
/// **Per-rank slices.** Each global batch of `b` items is split into `worldSize`
/// contiguous slices in rank order; rank `r` gets `b / W + (r < b % W ? 1 : 0)` items,
/// so sizes differ by at most one. A rank's slice may be empty (when `b < W`, e.g. in a
/// small last batch). Every rank has the same `batchesPerEpoch`, empty slices included,
/// so ranks keep making matching collective calls: a rank with an empty slice still
/// joins the gradient allreduce (with zero gradient) and the embedding allgatherv
/// (contributing zero rows). Normalise a batch's loss by the global batch's item count
/// (`globalBatchCount(_:)`), not the local one; then the loss and gradient of a global
/// batch are the same computation whatever the number of ranks.
///
/// **Micro-batches** (deterministic training). With `microBatchSize` m, a global batch
/// of `b` items is cut into `⌈b / m⌉` micro-batches of m consecutive items (the last one
/// possibly shorter), and ranks get contiguous runs of whole micro-batches
/// (the same split as items above, in units of micro-batches). A micro-batch is then the
/// same rows whichever rank holds it, so its gradient is the same computation on any rank
/// count. `microBatchSize` 1 is the plain per-item split.
///
/// **Exactly once.** Without `dropLast`, the slices of all ranks over an epoch cover
/// every item exactly once (no padding, no duplicates); `evaluation(...)` builds that
/// sampler. With `dropLast`, the `itemCount % globalBatchSize` items at the end of the
/// epoch's permutation are skipped (a different set every epoch), and no item repeats.
public struct ShardedSampler: Sendable, Equatable {
    public let itemCount: Int
    public let globalBatchSize: Int
    public let rank: Int
    public let worldSize: Int
    public let seed: UInt64
    public let shuffle: Bool
    public let dropLast: Bool
    /// Items per micro-batch: the unit ranks' slices are made of (1: single items).
    public let microBatchSize: Int

    public init(itemCount: Int, globalBatchSize: Int, rank: Int, worldSize: Int, seed: UInt64,
                shuffle: Bool = true, dropLast: Bool = true, microBatchSize: Int = 1) {
        precondition(itemCount >= 0, "itemCount must be non-negative, got \(itemCount)")
        precondition(globalBatchSize >= 1, "globalBatchSize must be at least 1, got \(globalBatchSize)")
        precondition(microBatchSize >= 1, "microBatchSize must be at least 1, got \(microBatchSize)")
        precondition(worldSize >= 1 && (0 ..< worldSize).contains(rank),
                     "rank \(rank) is not in a world of \(worldSize) ranks")
        self.itemCount = itemCount
        self.globalBatchSize = globalBatchSize
        self.rank = rank
        self.worldSize = worldSize
        self.seed = seed
        self.shuffle = shuffle
        self.dropLast = dropLast
        self.microBatchSize = microBatchSize
    }

    /// Training: shuffled every epoch, partial last batch dropped; slices of whole
    /// micro-batches of `microBatchSize` items.
    public static func training(itemCount: Int, globalBatchSize: Int, rank: Int, worldSize: Int,
                                seed: UInt64, microBatchSize: Int = 1) -> ShardedSampler {
        ShardedSampler(itemCount: itemCount, globalBatchSize: globalBatchSize, rank: rank,
                       worldSize: worldSize, seed: seed, shuffle: true, dropLast: true,
                       microBatchSize: microBatchSize)
    }

    /// Evaluation: items in index order, every item seen exactly once across ranks.
    public static func evaluation(itemCount: Int, globalBatchSize: Int, rank: Int,
                                  worldSize: Int) -> ShardedSampler {
        ShardedSampler(itemCount: itemCount, globalBatchSize: globalBatchSize, rank: rank,
                       worldSize: worldSize, seed: 0, shuffle: false, dropLast: false)
    }

    /// The number of global batches per epoch; the same on every rank.
    public var batchesPerEpoch: Int {
        dropLast ? itemCount / globalBatchSize : (itemCount + globalBatchSize - 1) / globalBatchSize
    }

    /// The number of items in global batch `batch` (all ranks together).
    public func globalBatchCount(_ batch: Int) -> Int {
        precondition((0 ..< batchesPerEpoch).contains(batch), "batch \(batch) of \(batchesPerEpoch)")
        return Swift.min(globalBatchSize, itemCount - batch * globalBatchSize)
    }

    /// Every item of epoch `epoch` in visiting order (the same on every rank).
    public func globalOrder(epoch: Int) -> [Int] {
        var order = Array(0 ..< itemCount)
        guard shuffle, itemCount > 1 else { return order }
        var generator = RandomGenerator(seed: Self.mix(seed ^ Self.mix(UInt64(truncatingIfNeeded: epoch))))
        for i in stride(from: itemCount - 1, through: 1, by: -1) {
            order.swapAt(i, generator.nextInt(upperBound: i + 1))
        }
        return order
    }

    /// The SplitMix64 output function (a bijection of `UInt64`): the first output of a
    /// `RandomGenerator` whose state is `value` minus the golden-ratio increment.
    static func mix(_ value: UInt64) -> UInt64 {
        var generator = RandomGenerator(seed: value &- 0x9E37_79B9_7F4A_7C15)
        return generator.nextUInt64()
    }

    /// The contiguous part of `0..<count` that rank `rank` of `worldSize` owns: sizes
    /// `count / worldSize`, plus one for the first `count % worldSize` ranks.
    public static func slice(of count: Int, rank: Int, worldSize: Int) -> Range<Int> {
        let base = count / worldSize, extra = count % worldSize
        let start = rank * base + Swift.min(rank, extra)
        return start ..< start + base + (rank < extra ? 1 : 0)
    }

    /// Per-rank item counts of global batch `batch`, in rank order (for `allgatherv`).
    public func sliceCounts(batch: Int) -> [Int] {
        (0 ..< worldSize).map { rows(batch: batch, rank: $0).count }
    }

    /// This rank's rows of global batch `batch`: positions within the batch (the first
    /// one is what dropout masks and gathers offset by).
    public func localRows(batch: Int) -> Range<Int> {
        rows(batch: batch, rank: rank)
    }

    /// The number of micro-batches of global batch `batch` (all ranks together).
    public func microBatchCount(_ batch: Int) -> Int {
        (globalBatchCount(batch) + microBatchSize - 1) / microBatchSize
    }

    /// This rank's micro-batches of global batch `batch` (indices within the batch).
    public func localMicroBatches(batch: Int) -> Range<Int> {
        Self.slice(of: microBatchCount(batch), rank: rank, worldSize: worldSize)
    }

    /// The rows of micro-batch `micro` of global batch `batch` (positions within the batch).
    public func microBatchRows(batch: Int, micro: Int) -> Range<Int> {
        let start = micro * microBatchSize
        return start ..< Swift.min(start + microBatchSize, globalBatchCount(batch))
    }

    /// Rank `r`'s rows of global batch `batch`: its whole micro-batches.
    private func rows(batch: Int, rank r: Int) -> Range<Int> {
        let count = globalBatchCount(batch)
        guard microBatchSize > 1 else { return Self.slice(of: count, rank: r, worldSize: worldSize) }
        let micro = Self.slice(of: microBatchCount(batch), rank: r, worldSize: worldSize)
        return Swift.min(micro.lowerBound * microBatchSize, count) ..< Swift.min(micro.upperBound * microBatchSize, count)
    }

    /// This rank's items for each global batch of `epoch`; `batchesPerEpoch` entries,
    /// some possibly empty.
    public func batches(epoch: Int) -> [[Int]] {
        let order = globalOrder(epoch: epoch)
        return (0 ..< batchesPerEpoch).map { batch in
            let start = batch * globalBatchSize
            let local = localRows(batch: batch)
            return Array(order[start + local.lowerBound ..< start + local.upperBound])
        }
    }

    /// This rank's items over the whole of `epoch`, batches concatenated.
    public func indices(epoch: Int) -> [Int] {
        batches(epoch: epoch).flatMap { $0 }
    }
}
