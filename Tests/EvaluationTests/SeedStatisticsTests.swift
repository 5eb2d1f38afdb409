import Evaluation
import XCTest

final class SeedStatisticsTests: XCTestCase {
    func testMeanAndSampleStandardDeviation() {
        let s = SeedStatistics([0.80, 0.86, 0.83])
        XCTAssertEqual(s.mean, 0.83, accuracy: 1e-12)
        // Σ(x − 0.83)² = 0.0009 + 0.0009 + 0 = 0.0018; /(n − 1) = 0.0009; √ = 0.03.
        XCTAssertEqual(s.std, 0.03, accuracy: 1e-12)
        XCTAssertEqual(s.standardError, 0.03 / 3.0.squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(SeedStatistics([0.5]).std, 0)
        XCTAssertTrue(SeedStatistics([]).mean.isNaN)
    }

    func testPairedDifferencesUseCommonSeedsInTheMethodsOrder() throws {
        let method = [(seed: 2, value: 0.9), (seed: 0, value: 0.7), (seed: 5, value: 0.1)]
        let baseline = [(seed: 0, value: 0.75), (seed: 1, value: 0.2), (seed: 2, value: 0.8)]
        let d = try XCTUnwrap(SeedStatistics.pairedDifferences(method: method, baseline: baseline))
        XCTAssertEqual(d.values.count, 2)
        XCTAssertEqual(d.values[0], 0.1, accuracy: 1e-12)
        XCTAssertEqual(d.values[1], -0.05, accuracy: 1e-12)
        XCTAssertNil(SeedStatistics.pairedDifferences(method: [(seed: 0, value: 1)], baseline: baseline),
                     "one common seed is not a paired comparison")
    }
}
