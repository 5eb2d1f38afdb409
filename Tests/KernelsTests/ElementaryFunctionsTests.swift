import Foundation
@testable import Kernels
import XCTest

/// The branch-free exp and normal CDF against Double references, their special values,
/// and the eight-lane row reductions against plain loops.
final class ElementaryFunctionsTests: XCTestCase {
    func testExpMatchesDoubleWithinTwoUlp() {
        var worst = 0.0
        for i in 0...20_000 {
            let x = Float(-87 + 175 * Double(i) / 20_000)
            let reference = Foundation.exp(Double(x))
            worst = max(worst, abs(Double(branchFreeExp(x)) - reference) / reference)
        }
        XCTAssertLessThan(worst, 2.4e-7, "worst relative error \(worst)")   // 2 ulp
    }

    func testExpSpecialValues() {
        XCTAssertEqual(branchFreeExp(0), 1)
        XCTAssertEqual(branchFreeExp(-.infinity), 0)
        XCTAssertEqual(branchFreeExp(-100), 0)
        XCTAssertEqual(branchFreeExp(-1e30), 0)
        XCTAssertEqual(branchFreeExp(100), .infinity)
        XCTAssertEqual(branchFreeExp(.infinity), .infinity)
        XCTAssertTrue(branchFreeExp(.nan).isNaN)
    }

    func testNormalCDFMatchesDouble() {
        var worstCDF = 0.0, worstGaussian = 0.0
        for i in 0...24_000 {
            let x = Float(-6 + 12 * Double(i) / 24_000)
            let v = Double(x)
            let cdf = 0.5 * Foundation.erfc(-v / 2.0.squareRoot()), gaussian = Foundation.exp(-v * v / 2)
            let (c, g) = normalCDFAndGaussian(x)
            worstCDF = max(worstCDF, abs(Double(c) - cdf) / cdf)
            worstGaussian = max(worstGaussian, abs(Double(g) - gaussian) / gaussian)
        }
        XCTAssertLessThan(worstCDF, 4e-6, "Φ: worst relative error \(worstCDF)")
        XCTAssertLessThan(worstGaussian, 4e-6, "e^(−x²/2): worst relative error \(worstGaussian)")
    }

    func testNormalCDFSpecialValues() {
        XCTAssertEqual(normalCDFAndGaussian(0).cdf, 0.5)
        XCTAssertEqual(normalCDFAndGaussian(0).gaussian, 1)
        XCTAssertEqual(normalCDFAndGaussian(50).cdf, 1)
        XCTAssertEqual(normalCDFAndGaussian(-50).cdf, 0)
        XCTAssertEqual(normalCDFAndGaussian(-50).gaussian, 0)
        XCTAssertEqual(normalCDFAndGaussian(.infinity).cdf, 1)
        XCTAssertEqual(normalCDFAndGaussian(-.infinity).cdf, 0)
        // The lower tail keeps its relative accuracy: Φ(−10) = 7.6198530·10⁻²⁴.
        XCTAssertEqual(Double(normalCDFAndGaussian(-10).cdf), 7.6198530241605e-24, accuracy: 1e-29)
    }

    func testRowReductionsMatchPlainLoops() {
        for count in Array(0...19) + [197, 768] {
            let x = randomArray(count, seed: UInt64(count) + 1, low: -3, high: 3)
            let y = randomArray(count, seed: UInt64(count) + 100)
            let plainSum = x.reduce(0, +), plainDot = zip(x, y).map { $0 * $1 }.reduce(0, +)
            XCTAssertEqual(rowSum(x, count: count), plainSum, accuracy: 1e-5 * Float(max(count, 1)))
            XCTAssertEqual(rowDot(x, y, count: count), plainDot, accuracy: 1e-5 * Float(max(count, 1)))
            XCTAssertEqual(rowMaximum(x, count: count), x.max() ?? -.infinity)
        }
        var x = randomArray(21, seed: 5)
        x[3] = .nan; x[12] = 7; x[20] = -.infinity
        XCTAssertEqual(rowMaximum(x, count: 21), 7, "NaN entries are skipped")
        XCTAssertEqual(rowMaximum([Float.nan, .nan], count: 2), -.infinity)
    }
}
