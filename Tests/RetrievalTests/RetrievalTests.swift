@testable import DataParallel
@testable import Datasets
import Distributed
import Formats
@testable import Evaluation
import Foundation
@testable import Import
import Kernels
@testable import Model
@testable import Retrieval
import TestSupport
@testable import Training
import XCTest

final class RetrievalTests: XCTestCase {
    func gaussian(_ count: Int, seed: UInt64) -> [Float] {
        var generator = RandomGenerator(seed: seed)
        var values = [Float](repeating: 0, count: count)
        generator.fillGaussian(&values, count: count)
        return values
    }

    func assertAgrees(_ result: TopKResult, _ queries: [Float], _ keys: [Float], dimension: Int, k: Int,
                      order: SimilarityOrder, file: StaticString = #filePath, line: UInt = #line) {
        let reference = bruteForceTopK(queries: queries, keys: keys, dimension: dimension, k: k, order: order)
        XCTAssertTrue(topKAgrees(result, reference: reference, queries: queries, keys: keys, dimension: dimension),
                      "blocked \(order) top-\(k) differs from brute force", file: file, line: line)
        // Random Gaussian data has no near-ties, so the indices agree exactly too.
        XCTAssertEqual(result.indices, reference.indices, file: file, line: line)
    }

    func testBlockedTopKMatchesBruteForceWithOddSizes() {
        let n = 37, m = 53, d = 11
        let queries = gaussian(n * d, seed: 1), keys = gaussian(m * d, seed: 2)
        // Block sizes that divide neither N nor M, k larger than a key block, k = M.
        for (blocks, k) in [(RetrievalBlocks(queryRows: 5, keyRows: 7), 1),
                            (RetrievalBlocks(queryRows: 5, keyRows: 7), 10),
                            (RetrievalBlocks(queryRows: 64, keyRows: 3), 9),
                            (RetrievalBlocks(queryRows: 1, keyRows: 100), m),
                            (RetrievalBlocks(queryRows: 6, keyRows: 8), m)] {
            for order in SimilarityOrder.allCases {
                let result = cosineTopK(queries: queries, keys: keys, dimension: d, k: k, order: order, blocks: blocks)
                XCTAssertEqual(result.rowCount, n)
                assertAgrees(result, queries, keys, dimension: d, k: k, order: order)
            }
        }
    }

    func testBottomKIsTheReverseOfTopKWhenKEqualsM() {
        let queries = gaussian(4 * 5, seed: 3), keys = gaussian(9 * 5, seed: 4)
        let top = cosineTopK(queries: queries, keys: keys, dimension: 5, k: 9)
        let bottom = cosineTopK(queries: queries, keys: keys, dimension: 5, k: 9, order: .leastSimilar,
                                blocks: RetrievalBlocks(queryRows: 3, keyRows: 2))
        for r in 0..<4 {
            XCTAssertEqual(Array(bottom.indices(row: r)), Array(top.indices(row: r).reversed()))
            // Other block shapes: equal up to the GEMM's rounding (BLIS's last bits depend on
            // a product's m and n; OpenBLAS's do not).
            for (b, t) in zip(bottom.scores(row: r), top.scores(row: r).reversed()) {
                XCTAssertEqual(b, t, accuracy: 1e-6)
            }
        }
    }

    func testTiesGoToTheLowerKeyIndex() {
        // Unit vectors with exactly representable cosines: every score below is exact.
        let keys: [Float] = [0, 1, 0, 0,          // 0: cos 0 with the query
                             0.5, 0.5, 0.5, 0.5,  // 1: cos 0.5
                             1, 0, 0, 0,          // 2: cos 1
                             0.5, 0.5, 0.5, 0.5,  // 3: cos 0.5 (tie with 1)
                             1, 0, 0, 0,          // 4: cos 1 (tie with 2)
                             0, 0, 1, 0]          // 5: cos 0 (tie with 0)
        let query: [Float] = [1, 0, 0, 0]
        for blocks in [RetrievalBlocks(queryRows: 1, keyRows: 1), RetrievalBlocks(queryRows: 1, keyRows: 4),
                       RetrievalBlocks()] {
            let top = cosineTopK(queries: query, keys: keys, dimension: 4, k: 6, blocks: blocks)
            XCTAssertEqual(top.indices, [2, 4, 1, 3, 0, 5])
            XCTAssertEqual(top.scores, [1, 1, 0.5, 0.5, 0, 0])
            let top3 = cosineTopK(queries: query, keys: keys, dimension: 4, k: 3, blocks: blocks)
            XCTAssertEqual(top3.indices, [2, 4, 1])
            let bottom = cosineTopK(queries: query, keys: keys, dimension: 4, k: 3, order: .leastSimilar, blocks: blocks)
            XCTAssertEqual(bottom.indices, [0, 5, 1])
            XCTAssertEqual(bottom.scores, [0, 0, 0.5])
        }
    }

    func testEmbeddingsAreNormalisedBeforeComparison() {
        // Key 0 is long but at 60°, key 1 is short but aligned: cosine prefers key 1.
        let keys: [Float] = [50, 86.6025, 0.01, 0]
        let result = cosineTopK(queries: [3, 0], keys: keys, dimension: 2, k: 2)
        XCTAssertEqual(result.indices, [1, 0])
        XCTAssertEqual(result.scores[0], 1, accuracy: 1e-6)
        XCTAssertEqual(result.scores[1], 0.5, accuracy: 1e-5)
    }

    func testLabelConstraintAndUnfilledSlots() {
        let keys: [Float] = [1, 0, 0.6, 0.8, 0, 1]
        let keyLabels = [0, 1, 1]
        let queryLabels = [1, 0]
        let queries: [Float] = [1, 0, 0, 1]
        let shared = SharedKeys(normalizing: keys, dimension: 2)
        let result = queryLabels.withUnsafeBufferPointer { ql in
            keyLabels.withUnsafeBufferPointer { kl in
                shared.topK(normalizedQueries: queries, k: 2,
                            constraint: LabelConstraint(queryLabels: ql.baseAddress!, keyLabels: kl.baseAddress!))
            }
        }
        // Query 0 (label 1) may use keys 1, 2: key 1 scores 0.6. Query 1 (label 0): only key 0.
        XCTAssertEqual(result.indices, [1, 2, 0, -1])
        XCTAssertEqual(result.scores[3], -.infinity)
    }

    func testSlicedSearchEqualsWholeSearch() {
        // What ranks do: disjoint query slices against the same keys, rows concatenated.
        let n = 23, m = 17, d = 6
        let queries = gaussian(n * d, seed: 5), keys = gaussian(m * d, seed: 6)
        let blocks = RetrievalBlocks(queryRows: 4, keyRows: 5)
        let whole = cosineTopK(queries: queries, keys: keys, dimension: d, k: 4, blocks: blocks)
        for size in [2, 3, 5] {
            var indices: [Int] = []
            for rank in 0..<size {
                let slice = evenSlice(count: n, rank: rank, size: size)
                let part = cosineTopK(queries: Array(queries[slice.lowerBound * d ..< slice.upperBound * d]),
                                      keys: keys, dimension: d, k: 4, blocks: blocks)
                indices += part.indices
            }
            XCTAssertEqual(indices, whole.indices, "\(size) slices")
        }
    }

    func testDistributedTopKOnOneRank() throws {
        let queries = gaussian(10 * 3, seed: 7), keys = gaussian(8 * 3, seed: 8)
        let result = try distributedCosineTopK(comm: SingleRankCommunicator(), localQueries: queries,
                                               localKeys: keys, dimension: 3, k: 8,
                                               blocks: RetrievalBlocks(queryRows: 3, keyRows: 3))
        assertAgrees(result, queries, keys, dimension: 3, k: 8, order: .mostSimilar)
        XCTAssertTrue(try verifyDistributedRetrieval(comm: SingleRankCommunicator()))
    }

    func testEvenSlice() {
        XCTAssertEqual((0..<3).map { evenSlice(count: 10, rank: $0, size: 3) }, [0..<4, 4..<7, 7..<10])
        XCTAssertEqual((0..<4).map { evenSlice(count: 2, rank: $0, size: 4) }, [0..<1, 1..<2, 2..<2, 2..<2])
    }
}

final class PairingTests: XCTestCase {
    let dimension = 8
    let imageCount = 31, reportCount = 19

    func embeddings(_ rows: Int, seed: UInt64) -> [Float] {
        var generator = RandomGenerator(seed: seed)
        var values = [Float](repeating: 0, count: rows * dimension)
        generator.fillGaussian(&values, count: values.count)
        return values
    }

    lazy var images = embeddings(imageCount, seed: 11)
    lazy var reports = embeddings(reportCount, seed: 12)
    lazy var imageLabels = (0..<imageCount).map { ($0 * 7) % 3 }
    lazy var reportLabels = (0..<reportCount).map { $0 % 3 }

    func pair(_ strategy: PairingStrategy, seed: UInt64 = 3, images: [Float]? = nil, imageLabels: [Int]? = nil,
              reportLabels: [Int]? = nil) throws -> PairsFile {
        try pairImages(comm: SingleRankCommunicator(), split: "train", localImageEmbeddings: images ?? self.images,
                       localReportEmbeddings: reports, dimension: dimension,
                       localImageLabels: imageLabels, localReportLabels: reportLabels,
                       options: PairingOptions(strategy: strategy, seed: seed, recordedK: 4,
                                               blocks: RetrievalBlocks(queryRows: 6, keyRows: 5)))
    }

    /// Pairing computed slice by slice, as ranks would, with each slice's global offset.
    /// The single-rank API cannot take an offset, so this re-derives the random draws
    /// from the top-k lists of the slices — the same per-image rule `pairImages` uses.
    func choicesBySlices(_ strategy: PairingStrategy, slices: Int, seed: UInt64) -> [Int] {
        var chosen: [Int] = []
        let keys = SharedKeys(normalizing: reports, dimension: dimension)
        for rank in 0..<slices {
            let range = evenSlice(count: imageCount, rank: rank, size: slices)
            let queries = l2NormalizedRows(Array(images[range.lowerBound * dimension ..< range.upperBound * dimension]),
                                           dimension: dimension)
            let top = keys.topK(normalizedQueries: queries, k: 5, blocks: RetrievalBlocks(queryRows: 4, keyRows: 3))
            for (r, i) in range.enumerated() {
                var generator = pairingGenerator(seed: seed, imageIndex: i)
                switch strategy {
                case .sampleTopK(let k): chosen.append(top.indices[r * 5 + generator.nextInt(upperBound: k)])
                case .random: chosen.append(generator.nextInt(upperBound: reportCount))
                default: chosen.append(top.indices[r * 5])
                }
            }
        }
        return chosen
    }

    func testTop1IsTheBruteForceArgmax() throws {
        let pairs = try pair(.top1)
        let reference = bruteForceTopK(queries: images, keys: reports, dimension: dimension, k: 4)
        XCTAssertEqual(pairs.imageCount, imageCount)
        XCTAssertEqual(pairs.reportIndices, (0..<imageCount).map { reference.indices[$0 * 4] })
        for (i, record) in pairs.records.enumerated() {
            XCTAssertEqual(record.image, i)
            XCTAssertEqual(record.topReports, Array(reference.indices(row: i)))
            XCTAssertEqual(record.score, reference.scores[i * 4], accuracy: 1e-5)
            XCTAssertEqual(record.score, record.topScores[0])
        }
    }

    func testLeastSimilarIsTheBruteForceArgmin() throws {
        let pairs = try pair(.leastSimilar)
        let reference = bruteForceTopK(queries: images, keys: reports, dimension: dimension, k: 1, order: .leastSimilar)
        XCTAssertEqual(pairs.reportIndices, reference.indices)
        // The recorded list is still the most similar reports.
        let top = bruteForceTopK(queries: images, keys: reports, dimension: dimension, k: 4)
        XCTAssertEqual(pairs.records.flatMap(\.topReports), top.indices)
    }

    func testRandomStrategiesAreDeterministicAndRankCountInvariant() throws {
        for strategy in [PairingStrategy.sampleTopK(5), .random] {
            let first = try pair(strategy, seed: 9), second = try pair(strategy, seed: 9)
            XCTAssertEqual(first, second, "\(strategy) is not deterministic")
            XCTAssertNotEqual(first.reportIndices, try pair(strategy, seed: 10).reportIndices,
                              "\(strategy) ignores the seed")
            for slices in [1, 2, 3, 7] {
                XCTAssertEqual(choicesBySlices(strategy, slices: slices, seed: 9), first.reportIndices,
                               "\(strategy) with \(slices) slices")
            }
        }
    }

    func testSampleTopKChoosesAmongTheTopK() throws {
        let pairs = try pair(.sampleTopK(3))
        let reference = bruteForceTopK(queries: images, keys: reports, dimension: dimension, k: 3)
        var positions = Set<Int>()
        for (i, record) in pairs.records.enumerated() {
            let row = Array(reference.indices(row: i))
            XCTAssertTrue(row.contains(record.report))
            positions.insert(row.firstIndex(of: record.report)!)
        }
        XCTAssertEqual(positions, [0, 1, 2], "31 draws should use every position of the top 3")
        XCTAssertEqual(try pair(.sampleTopK(1)).reportIndices, try pair(.top1).reportIndices)
        XCTAssertThrowsError(try pair(.sampleTopK(reportCount + 1)))
    }

    func testRandomScoreIsTheCosineOfThePair() throws {
        let pairs = try pair(.random)
        let q = normalizedRowsInDouble(images, dimension: dimension)
        let t = normalizedRowsInDouble(reports, dimension: dimension)
        for record in pairs.records {
            let exact = (0..<dimension).reduce(0.0) { $0 + q[record.image * dimension + $1] * t[record.report * dimension + $1] }
            XCTAssertEqual(Double(record.score), exact, accuracy: 1e-5)
        }
        XCTAssertGreaterThan(Set(pairs.reportIndices).count, 10)
    }

    func testOracleIsTheMostSimilarReportOfTheImageClass() throws {
        let pairs = try pair(.oracle, imageLabels: imageLabels, reportLabels: reportLabels)
        let full = bruteForceTopK(queries: images, keys: reports, dimension: dimension, k: reportCount)
        for (i, record) in pairs.records.enumerated() {
            let expected = full.indices(row: i).first { reportLabels[$0] == imageLabels[i] }!
            XCTAssertEqual(record.report, expected)
            XCTAssertEqual(record.imageLabel, imageLabels[i])
            XCTAssertEqual(record.reportLabel, imageLabels[i])
        }
        XCTAssertEqual(pairs.summary().labelMatchRate, 1)
    }

    func testOracleErrors() {
        // No report of class 2.
        XCTAssertThrowsError(try pair(.oracle, imageLabels: imageLabels, reportLabels: reportLabels.map { $0 % 2 })) {
            XCTAssertTrue(String(describing: $0).contains("no report has label 2"), "\($0)")
        }
        XCTAssertThrowsError(try pair(.oracle))
        var unknown = imageLabels
        unknown[4] = -1
        XCTAssertThrowsError(try pair(.oracle, imageLabels: unknown, reportLabels: reportLabels))
    }

    func testNonFiniteEmbeddingsAreRejected() {
        var broken = images
        broken[17] = .nan
        XCTAssertThrowsError(try pair(.top1, images: broken))
    }

    func testStrategyTextForm() throws {
        for strategy in [PairingStrategy.top1, .sampleTopK(5), .random, .leastSimilar, .oracle] {
            XCTAssertEqual(try PairingStrategy(parsing: strategy.description), strategy)
        }
        XCTAssertEqual(PairingStrategy.sampleTopK(5).description, "sample-top-k:5")
        XCTAssertThrowsError(try PairingStrategy(parsing: "sample-top-k:0"))
        XCTAssertThrowsError(try PairingStrategy(parsing: "best"))
    }

    func testPairsFileRoundTripAndValidation() throws {
        let pairs = try pair(.sampleTopK(3), imageLabels: imageLabels, reportLabels: reportLabels)
        let data = try pairs.jsonLines()
        XCTAssertEqual(try PairsFile(jsonLines: data), pairs)   // scores come back bit for bit
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n")
        XCTAssertEqual(lines.count, imageCount + 1)
        XCTAssertTrue(lines[0].contains("\"strategy\":\"sample-top-k:3\""), String(lines[0]))
        XCTAssertTrue(lines[1].hasPrefix("{\"image\":0,\"report\":"), String(lines[1]))

        let url = FileManager.default.temporaryDirectory.appendingPathComponent("pairs-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: url) }
        try pairs.write(to: url)
        XCTAssertEqual(try PairsFile(contentsOf: url), pairs)

        // A truncated file and an out-of-order record are refused.
        let truncated = Data(lines.dropLast().joined(separator: "\n").utf8)
        XCTAssertThrowsError(try PairsFile(jsonLines: truncated))
        var swapped = lines
        swapped.swapAt(1, 2)
        XCTAssertThrowsError(try PairsFile(jsonLines: Data(swapped.joined(separator: "\n").utf8)))
    }

    /// Version 2 writes snake_case keys; a version 1 file (camelCase keys) still reads.
    func testPairsFilesUseSnakeCaseKeysAndVersionOneFilesStillRead() throws {
        let pairs = try pair(.top1, imageLabels: imageLabels, reportLabels: reportLabels)
        let text = String(decoding: try pairs.jsonLines(), as: UTF8.self)
        let lines = text.split(separator: "\n")
        XCTAssertTrue(lines[0].contains("\"image_count\":\(imageCount)") && lines[0].contains("\"version\":2"),
                      String(lines[0]))
        XCTAssertTrue(lines[1].contains("\"top_scores\":[") && lines[1].contains("\"image_label\":"), String(lines[1]))
        XCTAssertFalse(text.contains("Count\"") || text.contains("Scores\"") || text.contains("Label\""))
        let versionOne = text.replacingOccurrences(of: "\"version\":2", with: "\"version\":1")
            .replacingOccurrences(of: "image_count", with: "imageCount").replacingOccurrences(of: "report_count", with: "reportCount")
            .replacingOccurrences(of: "recorded_k", with: "recordedK").replacingOccurrences(of: "top_scores", with: "topScores")
            .replacingOccurrences(of: "image_label", with: "imageLabel").replacingOccurrences(of: "report_label", with: "reportLabel")
        XCTAssertNotEqual(versionOne, text)
        XCTAssertEqual(try PairsFile(jsonLines: Data(versionOne.utf8)), pairs)
        let versionThree = text.replacingOccurrences(of: "\"version\":2", with: "\"version\":3")
        XCTAssertThrowsError(try PairsFile(jsonLines: Data(versionThree.utf8)))
    }

    func testFloatsRoundTripExactly() throws {
        var generator = RandomGenerator(seed: 99)
        let scores = (0..<2000).map { _ in generator.nextFloat() * 2 - 1 } + [1e-7, -0.0, 1, -1, 0.1]
        let records = scores.enumerated().map {
            PairRecord(image: $0.offset, report: 0, score: $0.element, topReports: [0], topScores: [$0.element])
        }
        let pairs = PairsFile(split: "s", strategy: .top1, seed: .max, reportCount: 1, recordedK: 1, records: records)
        let decoded = try PairsFile(jsonLines: try pairs.jsonLines())
        XCTAssertEqual(decoded.records.map(\.score.bitPattern), scores.map(\.bitPattern))
        XCTAssertEqual(decoded.seed, .max)
    }

    func testSummary() throws {
        let records = [(0, Float(-1)), (1, 0.05), (0, 0.35), (2, 1)].enumerated().map {
            PairRecord(image: $0.offset, report: $0.element.0, score: $0.element.1, topReports: [], topScores: [],
                       imageLabel: $0.offset < 3 ? 1 : nil, reportLabel: $0.offset == 2 ? 0 : 1)
        }
        let pairs = PairsFile(split: "valid", strategy: .random, seed: 0, reportCount: 3, recordedK: 0, records: records)
        let summary = pairs.summary(histogramBins: 4)
        XCTAssertEqual(summary.histogram.counts, [1, 0, 2, 1])   // bins of width 0.5; 1 goes in the last
        XCTAssertEqual(summary.meanScore!, Double(Float(-1) + 0.05 + 0.35 + 1) / 4, accuracy: 1e-7)
        XCTAssertEqual(summary.medianScore!, (Double(Float(0.05)) + Double(Float(0.35))) / 2, accuracy: 1e-12)
        XCTAssertEqual(summary.minScore, -1)
        XCTAssertEqual(summary.maxScore, 1)
        XCTAssertEqual(summary.distinctReports, 3)
        XCTAssertEqual(summary.maxImagesPerReport, 2)
        XCTAssertEqual(summary.labelledPairs, 3)
        XCTAssertEqual(summary.labelMatches, 2)
        XCTAssertEqual(summary.labelMatchRate!, 2.0 / 3, accuracy: 1e-12)
        let decoded = try ProjectJSON.decoder().decode(PairsSummary.self, from: try summary.jsonData())
        XCTAssertEqual(decoded, summary)
    }
}

final class MultiRankRetrievalTests: XCTestCase {
    func testDistributedSelfCheckOnSeveralRanks() throws {
        for size in [2, 3, 4] {
            let verdicts = try ThreadRankCommunicator.run(size: size) { try verifyDistributedRetrieval(comm: $0) }
            XCTAssertEqual(verdicts, [Bool](repeating: true, count: size), "\(size) ranks")
        }
    }

    func testPairsAreIndependentOfTheRankCount() throws {
        let dimension = 6, images = 29, reports = 13
        var generator = RandomGenerator(seed: 42)
        var imageRows = [Float](repeating: 0, count: images * dimension)
        var reportRows = [Float](repeating: 0, count: reports * dimension)
        generator.fillGaussian(&imageRows, count: imageRows.count)
        generator.fillGaussian(&reportRows, count: reportRows.count)
        let imageLabels = (0..<images).map { $0 % 4 }, reportLabels = (0..<reports).map { ($0 * 5) % 4 }
        for strategy in [PairingStrategy.top1, .sampleTopK(4), .random, .leastSimilar, .oracle] {
            let options = PairingOptions(strategy: strategy, seed: 5, recordedK: 3,
                                         blocks: RetrievalBlocks(queryRows: 4, keyRows: 3))
            func pairs(size: Int) throws -> [PairsFile] {
                try ThreadRankCommunicator.run(size: size) { comm in
                    let mine = evenSlice(count: images, rank: comm.rank, size: size)
                    let theirs = evenSlice(count: reports, rank: comm.rank, size: size)
                    return try pairImages(
                        comm: comm, split: "train",
                        localImageEmbeddings: Array(imageRows[mine.lowerBound * dimension ..< mine.upperBound * dimension]),
                        localReportEmbeddings: Array(reportRows[theirs.lowerBound * dimension ..< theirs.upperBound * dimension]),
                        dimension: dimension, localImageLabels: Array(imageLabels[mine]),
                        localReportLabels: Array(reportLabels[theirs]), options: options)
                }
            }
            let single = try pairs(size: 1)[0]
            for size in [2, 4, 5] {
                let files = try pairs(size: size)
                for file in files {
                    XCTAssertEqual(file.reportIndices, single.reportIndices, "\(strategy), \(size) ranks")
                    XCTAssertEqual(file.records.flatMap(\.topReports), single.records.flatMap(\.topReports))
                    XCTAssertEqual(file.records.map(\.imageLabel), single.records.map(\.imageLabel))
                    XCTAssertEqual(file.records.map(\.reportLabel), single.records.map(\.reportLabel))
                    for (a, b) in zip(file.records, single.records) { XCTAssertEqual(a.score, b.score, accuracy: 1e-5) }
                }
            }
        }
    }

    func testOracleErrorIsRaisedOnEveryRank() throws {
        let outcomes = try ThreadRankCommunicator.run(size: 3) { comm -> Bool in
            let rows: [Float] = comm.rank == 0 ? [1, 0, 0, 1] : [0.5, 0.5]
            do {
                _ = try pairImages(comm: comm, split: "s", localImageEmbeddings: rows, localReportEmbeddings: rows,
                                   dimension: 2, localImageLabels: comm.rank == 2 ? [7] : Array(repeating: 0, count: rows.count / 2),
                                   localReportLabels: Array(repeating: 0, count: rows.count / 2),
                                   options: PairingOptions(strategy: .oracle))
                return false
            } catch {
                return String(describing: error).contains("no report has label 7")
            }
        }
        XCTAssertEqual(outcomes, [true, true, true])
    }

    func testGatheredMetricsMatchTheWholeSplit() throws {
        let n = 23, classes = 4
        var generator = RandomGenerator(seed: 8)
        var scores = [Float](repeating: 0, count: n * classes)
        generator.fillUniform(&scores, count: scores.count, low: 0, high: 1)
        let labels = (0..<n).map { _ in generator.nextInt(upperBound: classes) }
        let whole = MetricsReport(scores: scores, labels: labels, classCount: classes)
        let reports = try ThreadRankCommunicator.run(size: 3) { comm -> [MetricsReport] in
            // Strided ownership (not contiguous): the gather orders by global index.
            let mine = Array(stride(from: comm.rank, to: n, by: comm.size))
            let myScores = mine.flatMap { scores[$0 * classes ..< ($0 + 1) * classes] }
            let myLabels = mine.map { labels[$0] }
            let gathered = try gatherPredictions(comm: comm, scores: myScores, labels: myLabels, globalIndices: mine,
                                                 classCount: classes, expectedCount: n)
            let confusion = try allreducedConfusionMatrix(
                comm: comm, labels: myLabels, predictions: argmaxPredictions(scores: myScores, classCount: classes),
                classCount: classes)
            return [gathered.report(), MetricsReport(confusion: confusion)]
        }
        for pair in reports {
            XCTAssertEqual(pair[0], whole)
            XCTAssertEqual(pair[1], MetricsReport(confusion: ConfusionMatrix(
                classCount: classes, labels: labels, predictions: argmaxPredictions(scores: scores, classCount: classes))))
        }
    }
}
