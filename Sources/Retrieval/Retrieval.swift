import Distributed
import Kernels

// Stage 1 retrieval: for every image embedding (a query row), the k report embeddings
// (key rows) of highest — or lowest — cosine similarity, computed exactly and blocked
// so that the N×M similarity matrix is never held in memory.
//
//     s(i, j) = v_i · t_j,   v_i = f_v(I_i)/‖f_v(I_i)‖,  t_j = f_t(T_j)/‖f_t(T_j)‖
//
// Work per query block: one GEMM per key block into a Bq×Bk scratch, then a scan of the
// scratch that keeps, for each query row, a sorted array of its k best (score, key)
// pairs. Memory: Bq×Bk scratch + the N×k result; time: N·M·D for the GEMMs plus
// N·M for the scan (once a row's list is full, 16 scores at a time are rejected with one
// vector comparison against the k-th best; insertion costs O(k) only for candidates that
// enter the list).
//
// Order and ties (deterministic): a row's list is sorted best first; between equal
// scores the lower key index comes first (keys are visited in increasing index and a
// candidate must be strictly better to move ahead of an entry). "Best" is the highest
// score for `.mostSimilar` and the lowest for `.leastSimilar` (the GEMM's s is then
// negated, exactly, and the same selection runs). A NaN score ranks below every number.

/// Which end of the similarity ranking to keep.
public enum SimilarityOrder: String, Codable, Sendable, CaseIterable {
    /// Highest cosine first (top-k, the default pairing).
    case mostSimilar
    /// Lowest cosine first (bottom-k, the "least similar" ablation).
    case leastSimilar
}

/// Block sizes of the blocked search: `queryRows` (Bq) × `keyRows` (Bk) floats of
/// scratch. Results do not depend on them beyond float rounding of the GEMM.
public struct RetrievalBlocks: Equatable, Sendable {
    public var queryRows: Int
    public var keyRows: Int

    /// Defaults: a 1024×2048 scratch (8 MiB). On 20k × 20k × 512 (one thread, AVX-512
    /// OpenBLAS) it searched in 4.14 s against 4.30 s with 256×2048, the same results
    /// (docs/benchmarks.md, "Retrieval against faiss"; `bench retrieval --query-block`).
    public init(queryRows: Int = 1024, keyRows: Int = 2048) {
        precondition(queryRows >= 1 && keyRows >= 1,
                     "RetrievalBlocks: block sizes must be positive, got \(queryRows)×\(keyRows)")
        self.queryRows = queryRows
        self.keyRows = keyRows
    }
}

/// The k best keys of each query row, best first.
///
/// `indices[r * k + p]` and `scores[r * k + p]` are the key index and similarity of the
/// p-th best key of query row r. When fewer than k keys are eligible (only with a label
/// constraint), the remaining slots hold index −1 and score −∞ (`.mostSimilar`) or +∞
/// (`.leastSimilar`).
public struct TopKResult: Equatable, Sendable {
    public let k: Int
    public var indices: [Int]
    public var scores: [Float]

    public init(k: Int, indices: [Int], scores: [Float]) {
        precondition(k >= 1 && indices.count == scores.count && indices.count % k == 0,
                     "TopKResult: \(indices.count) indices and \(scores.count) scores for k = \(k)")
        self.k = k
        self.indices = indices
        self.scores = scores
    }

    /// Number of query rows.
    public var rowCount: Int { indices.count / k }

    /// The key indices of row r, best first.
    public func indices(row r: Int) -> ArraySlice<Int> { indices[r * k ..< (r + 1) * k] }

    /// The scores of row r, best first.
    public func scores(row r: Int) -> ArraySlice<Float> { scores[r * k ..< (r + 1) * k] }

    /// The first `count` entries of every row (a top-`count` result).
    public func prefix(_ count: Int) -> TopKResult {
        precondition(count >= 1 && count <= k, "TopKResult.prefix: \(count) of \(k)")
        if count == k { return self }
        var result = TopKResult(k: count, indices: [], scores: [])
        for r in 0..<rowCount {
            result.indices.append(contentsOf: indices[r * k ..< r * k + count])
            result.scores.append(contentsOf: scores[r * k ..< r * k + count])
        }
        return result
    }

    /// The rows of all ranks, concatenated in rank order, on every rank (`allgatherv`).
    /// Every rank passes a result with the same k.
    public func allgathered(over comm: any Communicator) throws -> TopKResult {
        let gatheredIndices = try comm.allgatherv(indices).values
        let gatheredScores = try comm.allgatherv(scores).values
        return TopKResult(k: k, indices: gatheredIndices, scores: gatheredScores)
    }
}

/// Restricts the candidates of query row r to the keys j with
/// `keyLabels[j] == queryLabels[r]` (the class-matched oracle).
public struct LabelConstraint {
    public let queryLabels: UnsafePointer<Int>
    public let keyLabels: UnsafePointer<Int>

    public init(queryLabels: UnsafePointer<Int>, keyLabels: UnsafePointer<Int>) {
        self.queryLabels = queryLabels
        self.keyLabels = keyLabels
    }
}

/// Exact blocked top-k by inner product (cosine similarity when the rows are
/// L2-normalised; see `cosineTopK` for the normalising wrapper).
///
/// Shapes: queries (queryCount, dimension), keys (keyCount, dimension), row-major.
/// Requires 1 ≤ k ≤ keyCount. Key indices in the result are 0-based in `keys`.
public func blockedTopK(queries: UnsafePointer<Float>, queryCount: Int,
                        keys: UnsafePointer<Float>, keyCount: Int, dimension: Int,
                        k: Int, order: SimilarityOrder = .mostSimilar,
                        blocks: RetrievalBlocks = RetrievalBlocks(),
                        constraint: LabelConstraint? = nil) -> TopKResult {
    precondition(queryCount >= 0 && dimension >= 1, "blockedTopK: \(queryCount) queries of dimension \(dimension)")
    precondition(k >= 1 && k <= keyCount,
                 "blockedTopK: k = \(k) needs 1 ≤ k ≤ number of keys (\(keyCount))")
    // Selection runs on sign·s so that "best" is always "largest".
    let sign: Float = order == .mostSimilar ? 1 : -1
    var indices = [Int](repeating: -1, count: queryCount * k)
    var best = [Float](repeating: -.infinity, count: queryCount * k)   // sign·s, descending
    var filled = [Int](repeating: 0, count: queryCount)
    let bq = min(blocks.queryRows, max(queryCount, 1)), bk = min(blocks.keyRows, keyCount)
    let scratch = Tensor(shape: [bq, bk])                                // (Bq, Bk)

    indices.withUnsafeMutableBufferPointer { topIndex in
        best.withUnsafeMutableBufferPointer { topScore in
            for q0 in stride(from: 0, to: queryCount, by: bq) {
                let qn = min(bq, queryCount - q0)
                for j0 in stride(from: 0, to: keyCount, by: bk) {
                    let jn = min(bk, keyCount - j0)
                    // scratch (qn, jn) = sign · Q[q0..<q0+qn] · K[j0..<j0+jn]ᵀ; the sign is
                    // applied after the GEMM (α = 1), so that −s is exactly the negated s
                    // whatever a BLAS library does with α = −1.
                    gemm(.none, .transposed, m: qn, n: jn, k: dimension,
                         a: queries + q0 * dimension, lda: dimension,
                         b: keys + j0 * dimension, ldb: dimension,
                         beta: 0, c: scratch.data, ldc: jn)
                    if sign != 1 { for i in 0..<(qn * jn) { scratch.data[i] = -scratch.data[i] } }
                    for r in 0..<qn {
                        let q = q0 + r
                        let row = scratch.data + r * jn
                        var list = RowList(scores: topScore.baseAddress! + q * k, keys: topIndex.baseAddress! + q * k,
                                           k: k, filled: filled[q])
                        if let constraint {
                            for j in 0..<jn where constraint.keyLabels[j0 + j] == constraint.queryLabels[q] {
                                list.offer(row[j], key: j0 + j)
                            }
                        } else {
                            list.scan(row, count: jn, firstKey: j0)
                        }
                        filled[q] = list.filled
                    }
                }
            }
        }
    }
    if sign != 1 { for i in best.indices { best[i] = -best[i] } }
    return TopKResult(k: k, indices: indices, scores: best)
}

/// One query row's k best (score, key) pairs so far, best first, in the result's storage:
/// the selection half of `blockedTopK`.
struct RowList {
    let scores: UnsafeMutablePointer<Float>   // (k), descending; the first `filled` are used
    let keys: UnsafeMutablePointer<Int>       // (k)
    let k: Int
    var filled: Int

    /// Offers key `key` with score `s` (NaN counts as −∞): it enters when the list has room,
    /// or when it beats the k-th entry strictly (an equal score has a higher key index, so
    /// it loses), and moves ahead of every entry it beats strictly.
    @inline(__always)
    mutating func offer(_ score: Float, key: Int) {
        let s = score.isNaN ? -.infinity : score
        if filled == k && !(s > scores[k - 1]) { return }
        var p = filled == k ? k - 1 : filled
        while p > 0 && s > scores[p - 1] {
            scores[p] = scores[p - 1]
            keys[p] = keys[p - 1]
            p -= 1
        }
        scores[p] = s
        keys[p] = key
        if filled < k { filled += 1 }
    }

    /// Offers `row[0..<count]` as keys `firstKey…` in increasing key order. Once the list
    /// is full, a chunk of 16 scores none of which beats the k-th entry (NaN never does)
    /// is passed over with one vector comparison: none of them could enter, so the list
    /// is exactly what offering each one would leave.
    @inline(__always)
    mutating func scan(_ row: UnsafePointer<Float>, count: Int, firstKey: Int) {
        typealias Chunk = SIMD16<Float>
        var j = 0
        while j + Chunk.scalarCount <= count {
            if filled == k {
                let chunk = UnsafeRawPointer(row + j).loadUnaligned(as: Chunk.self)
                if !any(chunk .> Chunk(repeating: scores[k - 1])) {
                    j += Chunk.scalarCount
                    continue
                }
            }
            for t in j..<(j + Chunk.scalarCount) { offer(row[t], key: firstKey + t) }
            j += Chunk.scalarCount
        }
        for t in j..<count { offer(row[t], key: firstKey + t) }
    }
}

/// Top-k cosine similarity of each query row among the key rows (both normalised
/// here, in copies). Single process; see `distributedCosineTopK` for ranks.
public func cosineTopK(queries: [Float], keys: [Float], dimension: Int, k: Int,
                       order: SimilarityOrder = .mostSimilar,
                       blocks: RetrievalBlocks = RetrievalBlocks()) -> TopKResult {
    let q = l2NormalizedRows(queries, dimension: dimension)
    let keyRows = SharedKeys(normalizing: keys, dimension: dimension)
    return keyRows.topK(normalizedQueries: q, k: k, order: order, blocks: blocks)
}

// MARK: - Distributed

/// The L2-normalised key rows (report embeddings) of all ranks, in global key order,
/// held by every rank. Rank r's rows come after those of ranks 0..<r, so the global
/// key order is the rank order of the slices.
public struct SharedKeys: Sendable {
    /// (count, dimension), row-major, each row L2-normalised.
    public let rows: [Float]
    public let count: Int
    public let dimension: Int
    /// Key rows contributed by each rank (a single entry for a local set).
    public let rowsPerRank: [Int]

    /// A single-process key set: normalises a copy of `keys`.
    public init(normalizing keys: [Float], dimension: Int) {
        rows = l2NormalizedRows(keys, dimension: dimension)
        count = keys.count / dimension
        self.dimension = dimension
        rowsPerRank = [count]
    }

    /// Gathers every rank's `localKeys` (its disjoint slice of the key rows,
    /// (n_r, dimension)) on every rank with one `allgatherv`, then normalises them.
    /// Throws when the ranks disagree on `dimension`. Every rank must call it.
    public init(gathering localKeys: [Float], dimension: Int, comm: any Communicator) throws {
        precondition(dimension >= 1 && localKeys.count % dimension == 0,
                     "SharedKeys: \(localKeys.count) values is not a multiple of dimension \(dimension)")
        try checkSameOnAllRanks(dimension, what: "embedding dimension", comm: comm)
        let (values, counts) = try comm.allgatherv(localKeys)
        rows = l2NormalizedRows(values, dimension: dimension)
        count = values.count / dimension
        self.dimension = dimension
        rowsPerRank = counts.map { $0 / dimension }
    }

    /// Blocked top-k of already normalised query rows against these keys.
    public func topK(normalizedQueries: [Float], k: Int, order: SimilarityOrder = .mostSimilar,
                     blocks: RetrievalBlocks = RetrievalBlocks(), constraint: LabelConstraint? = nil) -> TopKResult {
        precondition(normalizedQueries.count % dimension == 0,
                     "SharedKeys.topK: \(normalizedQueries.count) query values for dimension \(dimension)")
        return normalizedQueries.withUnsafeBufferPointer { q in
            rows.withUnsafeBufferPointer { key in
                blockedTopK(queries: q.baseAddress!, queryCount: normalizedQueries.count / dimension,
                            keys: key.baseAddress!, keyCount: count, dimension: dimension,
                            k: k, order: order, blocks: blocks, constraint: constraint)
            }
        }
    }

    /// Cosine similarity of a normalised query row with key j (a dot product).
    public func similarity(normalizedQuery: UnsafePointer<Float>, key j: Int) -> Float {
        rows.withUnsafeBufferPointer { dot(normalizedQuery, $0.baseAddress! + j * dimension, count: dimension) }
    }
}

/// Distributed top-k: each rank passes its disjoint, contiguous slice of the query
/// rows (ranks in global query order) and its slice of the key rows (ranks in global
/// key order). Keys are shared by `allgatherv`, each rank searches its own queries,
/// and the rows are gathered with `allgatherv`, so every rank returns the result for
/// all queries in global order, with global key indices. The result does not depend
/// on how queries and keys are split over ranks (up to float rounding in the GEMM).
public func distributedCosineTopK(comm: any Communicator, localQueries: [Float], localKeys: [Float],
                                  dimension: Int, k: Int, order: SimilarityOrder = .mostSimilar,
                                  blocks: RetrievalBlocks = RetrievalBlocks()) throws -> TopKResult {
    let keys = try SharedKeys(gathering: localKeys, dimension: dimension, comm: comm)
    precondition(k >= 1 && k <= keys.count, "distributedCosineTopK: k = \(k) with \(keys.count) keys")
    let local = keys.topK(normalizedQueries: l2NormalizedRows(localQueries, dimension: dimension),
                          k: k, order: order, blocks: blocks)
    return try local.allgathered(over: comm)
}

/// The global index of this rank's first row when ranks hold consecutive slices of
/// `localCount` rows in rank order (an exclusive prefix sum; one `allgather`).
public func globalRowOffset(localCount: Int, comm: any Communicator) throws -> Int {
    let counts = try comm.allgather([localCount])
    return counts[0..<comm.rank].reduce(0, +)
}

/// The contiguous slice of `0..<count` owned by `rank` of `size` when the items are
/// split as evenly as possible in rank order (sizes differ by at most one, the first
/// `count % size` ranks holding one more).
public func evenSlice(count: Int, rank: Int, size: Int) -> Range<Int> {
    precondition(count >= 0 && size >= 1 && rank >= 0 && rank < size,
                 "evenSlice: count \(count), rank \(rank), size \(size)")
    return ShardedSampler.slice(of: count, rank: rank, worldSize: size)
}

/// Throws unless every rank passed the same `value` (all ranks see the same gathered
/// values, so all throw together).
func checkSameOnAllRanks(_ value: Int, what: String, comm: any Communicator) throws {
    let values = try comm.allgather([value])
    if Set(values).count > 1 {
        throw RetrievalError("ranks disagree on the \(what): \(values) (every rank must use the same encoder)")
    }
}

/// A retrieval or pairing input that cannot be processed.
public struct RetrievalError: Error, CustomStringConvertible, Sendable {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { "retrieval: \(reason)" }
}
