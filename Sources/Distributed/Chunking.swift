/// Splits `0..<count` into consecutive ranges of at most `limit` elements, in order.
///
/// MPI counts are `Int32`, so a collective over more than `Int32.max` elements is made
/// as several calls, one per range. Tests lower `limit` to exercise the split path on
/// small buffers.
func chunkRanges(count: Int, limit: Int) -> [Range<Int>] {
    precondition(count >= 0 && limit >= 1, "chunkRanges: count \(count), limit \(limit)")
    return stride(from: 0, to: count, by: limit).map { $0 ..< Swift.min($0 + limit, count) }
}

/// Exclusive prefix sums: the offset of each part when parts of `counts` are laid end to end.
func displacements(_ counts: [Int]) -> [Int] {
    var offsets: [Int] = []
    offsets.reserveCapacity(counts.count)
    var running = 0
    for count in counts {
        offsets.append(running)
        running += count
    }
    return offsets
}
