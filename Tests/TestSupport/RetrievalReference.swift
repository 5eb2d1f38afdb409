// Brute-force references for the exact retrieval, and the distributed self-check the
// multi-rank suite runs: test support, not product code.
import Distributed
import Evaluation
import Kernels
import Retrieval

/// The exact top-k by brute force in Double (normalisation and dot products), sorted
/// by (score, key index); the reference the blocked search is checked against.
public func bruteForceTopK(queries: [Float], keys: [Float], dimension: Int, k: Int,
                    order: SimilarityOrder = .mostSimilar) -> TopKResult {
    let q = normalizedRowsInDouble(queries, dimension: dimension)
    let t = normalizedRowsInDouble(keys, dimension: dimension)
    let n = queries.count / dimension, m = keys.count / dimension
    var result = TopKResult(k: k, indices: [], scores: [])
    for i in 0..<n {
        let scores = (0..<m).map { j in (0..<dimension).reduce(0.0) { $0 + q[i * dimension + $1] * t[j * dimension + $1] } }
        let ranked = (0..<m).sorted { a, b in
            scores[a] != scores[b] ? (order == .mostSimilar ? scores[a] > scores[b] : scores[a] < scores[b]) : a < b
        }
        for j in ranked.prefix(k) {
            result.indices.append(j)
            result.scores.append(Float(scores[j]))
        }
    }
    return result
}

public func normalizedRowsInDouble(_ rows: [Float], dimension: Int) -> [Double] {
    var out = rows.map(Double.init)
    for r in 0..<(rows.count / dimension) {
        let range = r * dimension ..< (r + 1) * dimension
        let norm = max(out[range].reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
        for i in range { out[i] /= norm }
    }
    return out
}

/// Whether `result` is a correct top-k of the same problem as `reference` (from
/// `bruteForceTopK`) up to `tolerance`: per row, the indices are distinct and in range,
/// each returned score is within `tolerance` of the exact similarity of its key, and
/// the p-th returned score is within `tolerance` of the exact p-th best score. Keys
/// whose similarities differ by less than the tolerance may therefore come in either
/// order — what float rounding in a differently blocked GEMM can change.
public func topKAgrees(_ result: TopKResult, reference: TopKResult, queries: [Float], keys: [Float],
                dimension: Int, tolerance: Float = 1e-5) -> Bool {
    guard result.k == reference.k, result.rowCount == reference.rowCount else { return false }
    let q = normalizedRowsInDouble(queries, dimension: dimension)
    let t = normalizedRowsInDouble(keys, dimension: dimension)
    let keyCount = keys.count / dimension
    for r in 0..<result.rowCount {
        let returned = Array(result.indices(row: r))
        guard Set(returned).count == returned.count, returned.allSatisfy({ $0 >= 0 && $0 < keyCount }) else {
            return false
        }
        for (p, j) in returned.enumerated() {
            let exact = (0..<dimension).reduce(0.0) { $0 + q[r * dimension + $1] * t[j * dimension + $1] }
            let score = result.scores[r * result.k + p]
            if abs(Double(score) - exact) > Double(tolerance) { return false }
            if abs(score - reference.scores[r * reference.k + p]) > tolerance { return false }
        }
    }
    return true
}

/// A check of distributed retrieval, pairing and metrics for the multi-rank suite:
/// every rank builds the same synthetic problem from a fixed seed, takes its
/// `evenSlice` of queries and keys (block sizes chosen not to divide the slices), and
/// compares the distributed results with a single-process computation of the whole
/// problem — top-k and bottom-k against the brute-force reference, each pairing
/// strategy's chosen reports exactly, and the gathered metrics exactly. Returns `true`
/// on every rank when all ranks agree (the per-rank verdicts are combined with an
/// `allreduce`). Every rank must call it.
public func verifyDistributedRetrieval(comm: any Communicator) throws -> Bool {
    let queryCount = 41, keyCount = 29, dimension = 7, k = 6, classCount = 3
    var generator = RandomGenerator(seed: 20_250_416)
    var queries = [Float](repeating: 0, count: queryCount * dimension)
    var keys = [Float](repeating: 0, count: keyCount * dimension)
    generator.fillGaussian(&queries, count: queries.count)
    generator.fillGaussian(&keys, count: keys.count)
    let imageLabels = (0..<queryCount).map { _ in generator.nextInt(upperBound: classCount) }
    let reportLabels = (0..<keyCount).map { $0 % classCount }
    let querySlice = evenSlice(count: queryCount, rank: comm.rank, size: comm.size)
    // Keys split unevenly the other way round, so query and key slicings differ.
    let keySlice = evenSlice(count: keyCount, rank: comm.size - 1 - comm.rank, size: comm.size)
    let keyStart = (0..<comm.size).map { evenSlice(count: keyCount, rank: comm.size - 1 - $0, size: comm.size).count }
        .prefix(comm.rank).reduce(0, +)
    let localKeyRange = keyStart ..< keyStart + keySlice.count
    let localQueries = Array(queries[querySlice.lowerBound * dimension ..< querySlice.upperBound * dimension])
    let localKeys = Array(keys[localKeyRange.lowerBound * dimension ..< localKeyRange.upperBound * dimension])
    let blocks = RetrievalBlocks(queryRows: 4, keyRows: 5)
    var ok = true

    for order in SimilarityOrder.allCases {
        let distributed = try distributedCosineTopK(comm: comm, localQueries: localQueries, localKeys: localKeys,
                                                    dimension: dimension, k: k, order: order, blocks: blocks)
        let reference = bruteForceTopK(queries: queries, keys: keys, dimension: dimension, k: k, order: order)
        ok = ok && topKAgrees(distributed, reference: reference, queries: queries, keys: keys, dimension: dimension)
    }

    let strategies: [PairingStrategy] = [.top1, .sampleTopK(4), .random, .leastSimilar, .oracle]
    for strategy in strategies {
        let options = PairingOptions(strategy: strategy, seed: 7, recordedK: 3, blocks: blocks)
        let distributed = try pairImages(comm: comm, split: "check", localImageEmbeddings: localQueries,
                                         localReportEmbeddings: localKeys, dimension: dimension,
                                         localImageLabels: Array(imageLabels[querySlice]),
                                         localReportLabels: Array(reportLabels[localKeyRange]), options: options)
        let whole = try pairImages(comm: SingleRankCommunicator(), split: "check", localImageEmbeddings: queries,
                                   localReportEmbeddings: keys, dimension: dimension,
                                   localImageLabels: imageLabels, localReportLabels: reportLabels,
                                   options: options)
        ok = ok && distributed.records.map(\.report) == whole.records.map(\.report)
            && zip(distributed.records, whole.records).allSatisfy { abs($0.score - $1.score) <= 1e-5 }
    }

    // Metrics: each rank scores its slice; the gathered report equals the whole one.
    var probabilities = [Float](repeating: 0, count: queryCount * classCount)
    generator.fillUniform(&probabilities, count: probabilities.count, low: 0, high: 1)
    let localScores = Array(probabilities[querySlice.lowerBound * classCount ..< querySlice.upperBound * classCount])
    let gathered = try gatherPredictions(comm: comm, scores: localScores, labels: Array(imageLabels[querySlice]),
                                         globalIndices: Array(querySlice), classCount: classCount,
                                         expectedCount: queryCount)
    let wholeReport = MetricsReport(scores: probabilities, labels: imageLabels, classCount: classCount)
    ok = ok && gathered.report() == wholeReport
    let confusion = try allreducedConfusionMatrix(
        comm: comm, labels: Array(imageLabels[querySlice]),
        predictions: argmaxPredictions(scores: localScores, classCount: classCount), classCount: classCount)
    ok = ok && MetricsReport(confusion: confusion).balancedAccuracy == wholeReport.balancedAccuracy

    return try comm.allreduce(ok ? 1 : 0, .min) == 1
}
