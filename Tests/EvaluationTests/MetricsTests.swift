import Distributed
import Formats
@testable import Evaluation
import Foundation
@testable import Kernels
@testable import Training
import XCTest

/// Asserts |actual − expected| ≤ 1e-12 (every expected value below is an exact fraction).
func assertClose(_ actual: Double?, _ expected: Double, _ message: String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
    guard let actual else { return XCTFail("nil, expected \(expected) \(message)", file: file, line: line) }
    XCTAssertEqual(actual, expected, accuracy: 1e-12, message, file: file, line: line)
}

final class MetricsTests: XCTestCase {
    // A 3-class example computed by hand:
    //   labels      0 0 0 1 1 2 2 2
    //   predictions 0 1 0 1 2 2 2 2
    // confusion (rows = true): [2 1 0; 0 1 1; 0 0 3], support 3 2 3, predicted 2 2 4.
    let labels = [0, 0, 0, 1, 1, 2, 2, 2]
    let predictions = [0, 1, 0, 1, 2, 2, 2, 2]

    func testHandComputedThreeClassExample() {
        let m = ConfusionMatrix(classCount: 3, labels: labels, predictions: predictions)
        XCTAssertEqual(m.counts, [2, 1, 0, 0, 1, 1, 0, 0, 3])
        XCTAssertEqual(m.support, [3, 2, 3])
        XCTAssertEqual(m.predictedCounts, [2, 2, 4])
        assertClose(m.accuracy, 6.0 / 8)
        // Recall 2/3, 1/2, 1.
        assertClose(m.balancedAccuracy, (2.0 / 3 + 1.0 / 2 + 1) / 3)
        // Precision 1, 1/2, 3/4.
        XCTAssertEqual(m.precision, [1, 0.5, 0.75])
        // F1 = 2TP/(2TP+FP+FN): 4/5, 2/4, 6/7.
        assertClose(m.f1[0], 4.0 / 5)
        assertClose(m.f1[1], 1.0 / 2)
        assertClose(m.f1[2], 6.0 / 7)
        assertClose(m.macroF1, 151.0 / 210)
    }

    func testClassAbsentFromPredictions() {
        // Class 2 is never predicted: precision 0 (zero_division = 0), recall 0, F1 0.
        let m = ConfusionMatrix(classCount: 3, labels: [0, 0, 1, 1, 2], predictions: [0, 0, 0, 1, 0])
        XCTAssertEqual(m.precision, [0.5, 1, 0])
        assertClose(m.balancedAccuracy, (1 + 0.5 + 0) / 3)
        assertClose(m.macroF1, (2.0 / 3 + 2.0 / 3 + 0) / 3)
        // A fourth class with neither support nor predictions changes nothing.
        let wider = ConfusionMatrix(classCount: 4, labels: [0, 0, 1, 1, 2], predictions: [0, 0, 0, 1, 0])
        assertClose(wider.balancedAccuracy, 0.5)
        assertClose(wider.macroF1, 4.0 / 9)
        XCTAssertNil(wider.recall[3])
        XCTAssertEqual(wider.f1[3], 0)
    }

    func testClassPredictedButAbsentFromLabels() {
        // Class 2 has no support: left out of balanced accuracy, F1 0 in macro-F1.
        let m = ConfusionMatrix(classCount: 3, labels: [0, 0, 1], predictions: [0, 2, 1])
        assertClose(m.balancedAccuracy, (0.5 + 1) / 2)
        assertClose(m.macroF1, (2.0 / 3 + 1 + 0) / 3)
    }

    func testPerfectAndInvertedClassifiers() {
        let y = [0, 1, 1, 0, 1]
        let perfect: [Float] = y.flatMap { $0 == 1 ? [0.1, 0.9] : [0.8, 0.2] }
        let inverted: [Float] = y.flatMap { $0 == 1 ? [0.9, 0.1] : [0.2, 0.8] }
        let good = MetricsReport(scores: perfect, labels: y, classCount: 2)
        XCTAssertEqual(good.accuracy, 1)
        XCTAssertEqual(good.balancedAccuracy, 1)
        XCTAssertEqual(good.macroF1, 1)
        XCTAssertEqual(good.macroAUROC, 1)
        let bad = MetricsReport(scores: inverted, labels: y, classCount: 2)
        XCTAssertEqual(bad.accuracy, 0)
        XCTAssertEqual(bad.balancedAccuracy, 0)
        XCTAssertEqual(bad.macroF1, 0)
        XCTAssertEqual(bad.macroAUROC, 0)
    }

    func testBinaryAUROCWithTies() {
        // sklearn's documented example.
        assertClose(binaryAUROC(scores: [0.1, 0.4, 0.35, 0.8], positive: [false, false, true, true]), 0.75)
        // One tied positive–negative pair counts 1/2.
        assertClose(binaryAUROC(scores: [0.5, 0.5], positive: [true, false]), 0.5)
        // Positives {0.5, 0.9} vs negatives {0.2, 0.5}: 1 + 1/2 + 1 + 1 over 4 pairs.
        assertClose(binaryAUROC(scores: [0.2, 0.5, 0.5, 0.9], positive: [false, true, false, true]), 3.5 / 4)
        // Constant scores: every pair tied.
        assertClose(binaryAUROC(scores: [Float](repeating: 0.3, count: 5), positive: [true, false, true, false, false]), 0.5)
        // NaN ranks below every number.
        assertClose(binaryAUROC(scores: [.nan, 0.1], positive: [false, true]), 1)
        XCTAssertNil(binaryAUROC(scores: [0.1, 0.2], positive: [true, true]))
        XCTAssertNil(binaryAUROC(scores: [], positive: []))
    }

    func testMacroOneVsRestAUROCByHand() {
        let labels = [0, 1, 2, 2]
        let scores: [Float] = [0.7, 0.2, 0.1,
                               0.3, 0.4, 0.3,
                               0.2, 0.2, 0.6,
                               0.4, 0.5, 0.1]
        // Class 0: 0.7 above the three negatives → 1. Class 1: 0.4 vs {0.2, 0.2, 0.5} → 2/3.
        // Class 2: {0.6, 0.1} vs {0.1, 0.3} → (1 + 1 + 1/2 + 0)/4 = 5/8.
        let perClass = perClassAUROC(scores: scores, labels: labels, classCount: 3)
        assertClose(perClass[0], 1)
        assertClose(perClass[1], 2.0 / 3)
        assertClose(perClass[2], 5.0 / 8)
        assertClose(macroAUROC(scores: scores, labels: labels, classCount: 3), 55.0 / 72)
        let report = MetricsReport(scores: scores, labels: labels, classCount: 3)
        XCTAssertEqual(argmaxPredictions(scores: scores, classCount: 3), [0, 1, 2, 1])
        assertClose(report.accuracy, 0.75)
        assertClose(report.macroAUROC, 55.0 / 72)
    }

    func testAUROCExcludesClassesWithOneLabelValue() {
        // Class 2 is absent from the labels: its AUROC is undefined and left out.
        let labels = [0, 1, 0, 1]
        let scores: [Float] = [0.9, 0.05, 0.05,
                               0.2, 0.7, 0.1,
                               0.6, 0.3, 0.1,
                               0.4, 0.5, 0.1]
        let perClass = perClassAUROC(scores: scores, labels: labels, classCount: 3)
        XCTAssertNil(perClass[2])
        assertClose(macroAUROC(scores: scores, labels: labels, classCount: 3), 1)
        XCTAssertNil(macroAUROC(scores: [0.5, 0.5], labels: [0], classCount: 2))
    }

    func testArgmaxTiesAndNaN() {
        XCTAssertEqual(argmaxPredictions(scores: [0.5, 0.5, .nan, 0.1, 0.2, 0.2, .nan, .nan], classCount: 2),
                       [0, 1, 0, 0])
    }

    func testOmegaScore() {
        // Only sample 0 is right for text and wrong for vision.
        assertClose(omegaScore(labels: [0, 1, 2, 0], textPredictions: [0, 1, 0, 1],
                               visionPredictions: [1, 1, 0, 0]), 0.25)
        XCTAssertEqual(omegaScore(labels: [], textPredictions: [], visionPredictions: []), 0)
    }

    func testReportJSONRoundTripAndTable() throws {
        let scores: [Float] = [0.7, 0.2, 0.1, 0.3, 0.4, 0.3, 0.2, 0.2, 0.6, 0.4, 0.5, 0.1]
        let report = MetricsReport(scores: scores, labels: [0, 1, 2, 2], classCount: 3,
                                   classNames: ["tumour", "stroma", "normal"])
        let decoded = try ProjectJSON.decoder().decode(MetricsReport.self, from: try report.jsonData())
        XCTAssertEqual(decoded, report)
        XCTAssertEqual(report.confusionMatrix, [[1, 0, 0], [0, 1, 0], [0, 1, 1]])
        let table = report.renderTable()
        XCTAssertTrue(table.contains("balanced accuracy 83.33%"), table)
        XCTAssertTrue(table.contains("confusion matrix (rows = true, columns = predicted)"), table)
        let lines = table.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains { $0.hasPrefix("normal") && $0.hasSuffix("0       1       1") }, table)
    }

    func testConfusionOnlyReportHasNoAUROC() {
        let m = ConfusionMatrix(classCount: 3, labels: labels, predictions: predictions)
        let report = MetricsReport(confusion: m)
        XCTAssertNil(report.macroAUROC)
        XCTAssertEqual(report.classNames, ["0", "1", "2"])
        assertClose(report.balancedAccuracy, 13.0 / 18)
        XCTAssertEqual(report.perClass.map(\.support), [3, 2, 3])
    }

    func testGatherPredictionsOrdersByGlobalIndex() throws {
        let comm = SingleRankCommunicator()
        let gathered = try gatherPredictions(comm: comm, scores: [0.1, 0.9, 0.8, 0.2, 0.4, 0.6],
                                             labels: [1, 0, 1], globalIndices: [2, 0, 1], classCount: 2,
                                             expectedCount: 3)
        XCTAssertEqual(gathered.globalIndices, [0, 1, 2])
        XCTAssertEqual(gathered.labels, [0, 1, 1])
        XCTAssertEqual(gathered.scores, [0.8, 0.2, 0.4, 0.6, 0.1, 0.9])
        XCTAssertEqual(gathered.report().accuracy, 1)   // each row now sits beside its own label
    }

    func testGatherPredictionsRejectsDuplicatesAndMissingSamples() {
        let comm = SingleRankCommunicator()
        XCTAssertThrowsError(try gatherPredictions(comm: comm, scores: [0.1, 0.9, 0.1, 0.9], labels: [1, 1],
                                                   globalIndices: [4, 4], classCount: 2))
        XCTAssertThrowsError(try gatherPredictions(comm: comm, scores: [0.1, 0.9], labels: [1],
                                                   globalIndices: [0], classCount: 2, expectedCount: 2))
    }

    func testConfusionMatricesOfDisjointSlicesSumToTheWhole() throws {
        // What the allreduce path computes: the sum of per-rank matrices.
        let whole = ConfusionMatrix(classCount: 3, labels: labels, predictions: predictions)
        let first = ConfusionMatrix(classCount: 3, labels: Array(labels[..<3]), predictions: Array(predictions[..<3]))
        let rest = ConfusionMatrix(classCount: 3, labels: Array(labels[3...]), predictions: Array(predictions[3...]))
        XCTAssertEqual(ConfusionMatrix(classCount: 3, counts: zip(first.counts, rest.counts).map(+)), whole)
        let reduced = try allreducedConfusionMatrix(comm: SingleRankCommunicator(), labels: labels,
                                                    predictions: predictions, classCount: 3)
        XCTAssertEqual(reduced, whole)
    }
}
