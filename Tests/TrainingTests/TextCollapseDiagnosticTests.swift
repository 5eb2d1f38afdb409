@testable import DataParallel
@testable import Datasets
@testable import Distributed
@testable import Evaluation
@testable import Formats
@testable import Import
import Kernels
@testable import Model
@testable import Retrieval
@testable import Training
import XCTest

/// `meanPairwiseCosine` (the `text_cos` of metrics.jsonl) against its definition.
final class TextCollapseDiagnosticTests: XCTestCase {
    func unit(_ v: [Float]) -> [Float] {
        let n = v.map { $0 * $0 }.reduce(0, +).squareRoot()
        return v.map { $0 / n }
    }

    func fromSum(_ vectors: [[Float]]) -> Double? {
        var sum = [Float](repeating: 0, count: vectors[0].count)
        for v in vectors { for k in v.indices { sum[k] += v[k] } }
        return meanPairwiseCosine(sumOfUnitVectors: sum, width: sum.count, count: vectors.count)
    }

    func testCollapsedOrthogonalAndOpposite() throws {
        let same: [Float] = [1, 2, 3, 4]
        XCTAssertEqual(try XCTUnwrap(fromSum(Array(repeating: unit(same), count: 5))), 1, accuracy: 1e-6)
        let basis: [[Float]] = (0..<4).map { i in (0..<4).map { $0 == i ? 1 : 0 } }
        XCTAssertEqual(try XCTUnwrap(fromSum(basis)), 0, accuracy: 1e-7)
        XCTAssertEqual(try XCTUnwrap(fromSum([[1, 0], [-1, 0]])), -1, accuracy: 1e-7)
        XCTAssertNil(fromSum([[1, 0]]))
    }

    func testMatchesTheMeanOverAllPairs() throws {
        var g = RandomGenerator(seed: 42)
        let vectors = (0..<9).map { _ in unit((0..<16).map { _ in g.nextFloat() - 0.3 }) }
        var total = 0.0, pairs = 0
        for i in vectors.indices {
            for j in vectors.indices where i != j {
                total += zip(vectors[i], vectors[j]).map { Double($0 * $1) }.reduce(0, +)
                pairs += 1
            }
        }
        XCTAssertEqual(try XCTUnwrap(fromSum(vectors)), total / Double(pairs), accuracy: 1e-5)
    }
}
