import Distributed

/// Sums per-micro-batch vectors over all ranks *exactly*, so the result does not depend on
/// which rank computed which micro-batch, nor on the order of the additions.
///
/// Float addition is not associative: an allreduce of float gradients gives results that
/// depend on the rank count (which rows each rank summed locally) and on the reduction
/// tree. Here every micro-batch's vector (its gradient and its loss terms) is recorded
/// as it is, the per-segment maxima |x| are combined with one small MAX allreduce (exact),
/// and each value is then rounded onto a fixed-point grid shared by all ranks (one grid
/// per segment, i.e. per parameter tensor) and summed as `Int64` — integer addition is
/// exact and associative, so ONE `Int64` SUM allreduce gives the same bits on any rank
/// count — and converted back to float. This is the shared-scale integer accumulation of
/// reproducible summation (Demmel & Nguyen; ReproBLAS), with one level.
///
/// Grid of a segment whose largest |x| over all micro-batches is M, with N micro-batches
/// in the step: g = e(M) + 1 + ⌈log₂ N⌉ − 62, where e(M) is M's binary exponent (M < 2^(e+1)).
/// Each value is q = round(x · 2^−g), |q| ≤ 2^(62 − ⌈log₂ N⌉), so N of them sum below
/// 2^62 (no overflow). The rounding error is at most 2^(g−1) ≤ M · 2^(−61 + ⌈log₂ N⌉) per
/// value: far below float32's 2^−24 relative precision for every value within 2^30 of M.
/// A segment with a NaN or infinite value anywhere comes back as NaN (the step's finite
/// checks then stop the run).
///
/// Memory: this rank's micro-batches' vectors are kept until the reduction
/// (`capacity × width` floats) plus one 64-bit integer per value.
final class ExactMicroBatchSum {
    /// Floats per micro-batch vector.
    let width: Int
    /// Micro-batch vectors this rank can hold in one step.
    let capacity: Int
    /// Ranges of `0..<width` that share a grid (parameter tensors, single loss terms).
    private let segments: [Range<Int>]
    private let recorded: UnsafeMutableBufferPointer<Float>
    /// Each segment's largest |x| (+∞ when non-finite), then one extra slot reduced with
    /// them (the stop vote).
    private let maxima: UnsafeMutableBufferPointer<Float>
    private let accumulator: UnsafeMutableBufferPointer<Int>
    /// The last `reduce`'s sums (`width` floats).
    let result: UnsafeMutableBufferPointer<Float>
    private var count = 0

    /// - Parameter segments: disjoint ranges covering `0..<width`.
    init(width: Int, capacity: Int, segments: [Range<Int>]) {
        precondition(segments.reduce(0) { $0 + $1.count } == width, "ExactMicroBatchSum: segments must cover the width")
        self.width = width
        self.capacity = capacity
        self.segments = segments
        recorded = .allocate(capacity: max(capacity, 1) * width)
        recorded.initialize(repeating: 0)
        maxima = .allocate(capacity: segments.count + 1)
        maxima.initialize(repeating: 0)
        accumulator = .allocate(capacity: width)
        accumulator.initialize(repeating: 0)
        result = .allocate(capacity: width)
        result.initialize(repeating: 0)
    }

    deinit {
        recorded.deallocate()
        maxima.deallocate()
        accumulator.deallocate()
        result.deallocate()
    }

    /// Starts a step: no micro-batch recorded yet.
    func begin() {
        count = 0
        maxima.update(repeating: 0)
    }

    /// The slot the next micro-batch's vector is written into (`width` floats, zeroed).
    func nextSlot() -> UnsafeMutableBufferPointer<Float> {
        precondition(count < capacity, "ExactMicroBatchSum: more than \(capacity) micro-batches in one step")
        let slot = UnsafeMutableBufferPointer(rebasing: recorded[count * width ..< (count + 1) * width])
        slot.update(repeating: 0)
        return slot
    }

    /// Keeps the vector written into `nextSlot()` and folds its magnitudes into the maxima.
    func commitSlot() {
        let base = recorded.baseAddress! + count * width
        for (s, segment) in segments.enumerated() {
            var largest: Float = 0
            var finite = true
            for i in segment {
                let a = base[i].magnitude
                finite = finite && a.isFinite
                largest = Swift.max(largest, a)
            }
            maxima[s] = Swift.max(maxima[s], finite ? largest : .infinity)
        }
        count += 1
    }

    /// Sums the recorded vectors of every rank (`microBatches` in all, the same number on
    /// every rank) into `result`. `vote` rides along with the maxima
    /// (reduced with MAX) and the largest vote comes back. Two allreduces: the maxima
    /// (MAX, segments + 1 floats) and the fixed-point sums (SUM, `width` Int64 values).
    func reduce(over comm: any Communicator, microBatches: Int, vote: Float) throws -> Float {
        maxima[segments.count] = vote
        try comm.allreduce(maxima, .max)
        let headroom = Int.bitWidth - (max(microBatches, 1) - 1).leadingZeroBitCount   // ⌈log₂ N⌉
        accumulator.update(repeating: 0)
        let acc = accumulator.baseAddress!
        for (s, segment) in segments.enumerated() {
            let largest = maxima[s]
            guard largest > 0 && largest.isFinite else { continue }
            let scale = Double(sign: .plus, exponent: -(Int(largest.exponent) + 1 + headroom - 62), significand: 1)
            for k in 0..<count {
                let x = recorded.baseAddress! + k * width
                // |q| ≤ 2^(62 − headroom), so at most 2^headroom of them cannot overflow.
                for i in segment { acc[i] &+= Int((Double(x[i]) * scale).rounded(.toNearestOrEven)) }
            }
        }
        try comm.allreduce(accumulator, .sum)
        for (s, segment) in segments.enumerated() {
            let largest = maxima[s]
            if largest == 0 {
                for i in segment { result[i] = 0 }
            } else if !largest.isFinite {
                for i in segment { result[i] = .nan }
            } else {
                let grid = Double(sign: .plus, exponent: Int(largest.exponent) + 1 + headroom - 62, significand: 1)
                for i in segment { result[i] = Float(Double(acc[i]) * grid) }
            }
        }
        return maxima[segments.count]
    }
}
