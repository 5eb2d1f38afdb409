import Kernels
import XCTest

final class VectorOpsTests: XCTestCase {
    func testAddBiasRowsAndSumRowsInto() {
        let rows = 3, cols = 5
        let bias = randomArray(cols, seed: 1)
        let y0 = randomArray(rows * cols, seed: 2)
        var y = y0
        addBiasRows(&y, bias: bias, rows: rows, cols: cols)
        XCTAssertEqual(y, y0.indices.map { y0[$0] + bias[$0 % cols] })

        // sumRowsInto is the backward of addBiasRows: dbias += Σ_r dy[r, :], accumulating.
        let dy = randomArray(rows * cols, seed: 3)
        let initial = randomArray(cols, seed: 4)
        var dbias = initial
        sumRowsInto(dy, &dbias, rows: rows, cols: cols)
        let want = (0..<cols).map { j in initial[j] + (0..<rows).reduce(Float(0)) { $0 + dy[$1 * cols + j] } }
        assertClose(dbias, want, rtol: 1e-6, atol: 1e-7)
        sumRowsInto(dy, &dbias, rows: rows, cols: cols)
        assertClose(dbias, zip(want, initial).map { 2 * $0 - $1 }, rtol: 1e-6, atol: 1e-6)
    }

    func testLevelOneBLAS() {
        let n = 1001
        let x = randomArray(n, seed: 5), y0 = randomArray(n, seed: 6)
        var y = y0
        axpy(0.25, x, &y, count: n)
        assertClose(y, (0..<n).map { y0[$0] + 0.25 * x[$0] }, rtol: 1e-6, atol: 1e-7)

        var s = x
        scale(&s, by: -3, count: n)
        assertClose(s, x.map { -3 * $0 }, rtol: 1e-6)

        let want = (0..<n).reduce(0.0) { $0 + Double(x[$1]) * Double(y0[$1]) }
        XCTAssertEqual(Double(dot(x, y0, count: n)), want, accuracy: 1e-4)
        XCTAssertEqual(dot(x, y0, count: 0), 0)
    }

    /// Σx² in Double keeps the small terms a Float accumulator would drop.
    func testSumOfSquaresAccumulatesInDouble() {
        var x = [Float](repeating: 1e-4, count: 1_000_003)
        x[x.count - 1] = 1e4   // after the small terms: in Float, 1e8 + 0.01 rounds to 1e8
        let want = 1e8 + 1_000_002 * Double(Float(1e-4)) * Double(Float(1e-4))
        XCTAssertEqual(sumOfSquares(x, count: x.count), want, accuracy: 1e-6)
        XCTAssertEqual(sumOfSquares([3, 4, 12], count: 3), 169)
        XCTAssertEqual(sumOfSquares(x, count: 0), 0)
    }
}
