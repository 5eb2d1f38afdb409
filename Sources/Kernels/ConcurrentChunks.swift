import Dispatch

/// Runs `body` over the items `0..<count` split into contiguous ranges, one per worker,
/// concurrently when `workers` > 1 and each range gets at least `minimumPerWorker` items
/// (fewer workers otherwise; one call on the whole range when only one remains). Every
/// item belongs to exactly one range, so a body that treats items independently gives the
/// same bits for any worker count.
@inline(__always)
public func concurrentChunks(_ count: Int, workers: Int, minimumPerWorker: Int = 1,
                             _ body: (Range<Int>) -> Void) {
    let n = min(workers, count / max(1, minimumPerWorker))
    guard n > 1 else {
        if count > 0 { body(0..<count) }
        return
    }
    DispatchQueue.concurrentPerform(iterations: n) { i in
        body((count * i / n)..<(count * (i + 1) / n))
    }
}

/// x[0..<count] = 0, split over `workers` (see `concurrentChunks`).
public func zeroFill(_ x: UnsafeMutablePointer<Float>, count: Int, workers: Int) {
    concurrentChunks(count, workers: workers, minimumPerWorker: 1 << 16) { range in
        (x + range.lowerBound).update(repeating: 0, count: range.count)
    }
}
