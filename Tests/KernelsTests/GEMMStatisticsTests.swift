@testable import Kernels
import XCTest

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
        // A recorded call adds its duration (once, on one thread).
        let before = GEMMStatistics.seconds
        GEMMStatistics.record(flops: 8, nanoseconds: 250_000_000)
        XCTAssertEqual(GEMMStatistics.seconds - before, 0.25, accuracy: 1e-9)
        GEMMStatistics.reset()
        XCTAssertEqual(GEMMStatistics.calls, 0)
        XCTAssertEqual(GEMMStatistics.flops, 0)
        XCTAssertEqual(GEMMStatistics.seconds, 0)
    }
}
