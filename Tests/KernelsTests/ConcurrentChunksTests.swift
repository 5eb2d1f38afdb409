import Kernels
import XCTest

/// `concurrentChunks` hands every item to exactly one range, whatever the worker count.
final class ConcurrentChunksTests: XCTestCase {
    func testEveryItemInExactlyOneRange() {
        for (count, workers, minimum) in [(0, 2, 1), (1, 2, 1), (7, 3, 1), (1000, 2, 64), (100, 4, 64), (1 << 17, 2, 1 << 16)] {
            let hits = UnsafeMutablePointer<Int32>.allocate(capacity: max(count, 1))
            hits.initialize(repeating: 0, count: max(count, 1))
            defer { hits.deallocate() }
            concurrentChunks(count, workers: workers, minimumPerWorker: minimum) { range in
                for i in range { hits[i] += 1 }
            }
            XCTAssertTrue((0..<count).allSatisfy { hits[$0] == 1 }, "count \(count), workers \(workers)")
        }
    }

    func testZeroFillClearsExactlyTheRange() {
        let n = 3 << 16
        var x = [Float](repeating: 1, count: n + 5)
        x.withUnsafeMutableBufferPointer { zeroFill($0.baseAddress!, count: n, workers: 2) }
        XCTAssertTrue(x[0..<n].allSatisfy { $0 == 0 })
        XCTAssertEqual(Array(x[n...]), [1, 1, 1, 1, 1])
    }
}
