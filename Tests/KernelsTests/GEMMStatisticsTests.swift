import XCTest
@testable import Kernels

final class GEMMStatisticsTests: XCTestCase {
    /// Counts calls and 2·m·n·k only while enabled; empty products are not counted.
    func testCountsOnlyWhileEnabled() {
        let a = Tensor(shape: [4, 3]), b = Tensor(shape: [3, 5]), c = Tensor(shape: [4, 5])
        GEMMStatistics.reset()
        gemm(.none, .none, m: 4, n: 5, k: 3, a: a.data, b: b.data, beta: 0, c: c.data)
        XCTAssertEqual(GEMMStatistics.calls, 0)
        GEMMStatistics.isEnabled = true
        defer { GEMMStatistics.isEnabled = false }
        gemm(.none, .none, m: 4, n: 5, k: 3, a: a.data, b: b.data, beta: 0, c: c.data)
        gemm(.none, .none, m: 4, n: 5, k: 0, a: a.data, b: b.data, beta: 0, c: c.data)
        gemm(.none, .none, m: 0, n: 5, k: 3, a: a.data, b: b.data, beta: 0, c: c.data)
        XCTAssertEqual(GEMMStatistics.calls, 1)
        XCTAssertEqual(GEMMStatistics.flops, 2 * 4 * 5 * 3)
        XCTAssertGreaterThanOrEqual(GEMMStatistics.seconds, 0)
        GEMMStatistics.reset()
        XCTAssertEqual(GEMMStatistics.calls, 0)
        XCTAssertEqual(GEMMStatistics.flops, 0)
    }
}
