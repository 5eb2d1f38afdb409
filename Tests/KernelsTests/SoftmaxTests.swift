import Foundation
import Kernels
import XCTest

final class SoftmaxTests: XCTestCase {
    let rows = 5, cols = 13

    /// Double reference: softmax (or log-softmax) of each row.
    private func referenceSoftmax(_ x: [Float], rows: Int, cols: Int, log logOutput: Bool) -> [Float] {
        var out = [Float](repeating: 0, count: x.count)
        for r in 0..<rows {
            let row = x[(r * cols)..<((r + 1) * cols)].map(Double.init)
            let m = row.max()!
            let lse = m + Foundation.log(row.reduce(0) { $0 + exp($1 - m) })
            for j in 0..<cols { out[r * cols + j] = Float(logOutput ? row[j] - lse : exp(row[j] - lse)) }
        }
        return out
    }

    private func softmax(_ x: [Float]) -> [Float] {
        forward(x) { softmaxForward($0, $1, rows: rows, cols: cols) }
    }

    private func logSoftmax(_ x: [Float]) -> [Float] {
        forward(x) { logSoftmaxForward($0, $1, rows: rows, cols: cols) }
    }

    func testSoftmaxForwardMatchesReferenceAndRowsSumToOne() {
        let x = randomArray(rows * cols, seed: 1, low: -4, high: 4)
        let y = softmax(x)
        assertClose(y, referenceSoftmax(x, rows: rows, cols: cols, log: false), rtol: 1e-5, atol: 1e-7)
        for r in 0..<rows {
            XCTAssertEqual(y[(r * cols)..<((r + 1) * cols)].reduce(0, +), 1, accuracy: 1e-5)
        }
    }

    func testLogSoftmaxForwardMatchesReference() {
        let x = randomArray(rows * cols, seed: 2, low: -4, high: 4)
        assertClose(logSoftmax(x), referenceSoftmax(x, rows: rows, cols: cols, log: true),
                    rtol: 1e-5, atol: 1e-5)
    }

    /// Logits around ±1000 would overflow exp without the max subtraction.
    func testStableWithLargeLogits() {
        var x = randomArray(rows * cols, seed: 3, low: -5, high: 5)
        for i in x.indices { x[i] += (i / cols) % 2 == 0 ? 1000 : -1000 }
        x[0] = 1e30; x[cols + 1] = -Float.infinity   // an extreme entry, a masked entry
        let y = softmax(x)
        XCTAssertTrue(y.allSatisfy { $0.isFinite }, "softmax produced non-finite values")
        assertClose(y, referenceSoftmax(x, rows: rows, cols: cols, log: false), rtol: 1e-5, atol: 1e-7)
        XCTAssertEqual(y[0], 1)
        XCTAssertEqual(y[cols + 1], 0)
        let ly = logSoftmax(x)
        XCTAssertTrue(ly.enumerated().allSatisfy { $0.element.isFinite || $0.offset == cols + 1 })
        assertClose(ly, referenceSoftmax(x, rows: rows, cols: cols, log: true), rtol: 1e-5, atol: 1e-4)
    }

    func testInPlaceForward() {
        let x = randomArray(rows * cols, seed: 4)
        var softmaxInPlace = x, logSoftmaxInPlace = x
        softmaxInPlace.withUnsafeMutableBufferPointer {
            softmaxForward($0.baseAddress!, $0.baseAddress!, rows: rows, cols: cols)
        }
        logSoftmaxInPlace.withUnsafeMutableBufferPointer {
            logSoftmaxForward($0.baseAddress!, $0.baseAddress!, rows: rows, cols: cols)
        }
        XCTAssertEqual(softmaxInPlace, softmax(x))
        XCTAssertEqual(logSoftmaxInPlace, logSoftmax(x))
    }

    /// Runs a (y, dy, dx) backward on arrays, adding into `dx`.
    private func backward(_ y: [Float], _ dy: [Float], into dx: inout [Float],
                          _ body: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void) {
        dx.withUnsafeMutableBufferPointer { body(y, dy, $0.baseAddress!) }
    }

    func testSoftmaxBackward() {
        let x = randomArray(rows * cols, seed: 5, low: -3, high: 3)
        let y = softmax(x), w = randomArray(rows * cols, seed: 6)
        let initial = randomArray(rows * cols, seed: 7)
        var dx = initial
        backward(y, w, into: &dx) { softmaxBackward($0, $1, $2, rows: rows, cols: cols) }
        let grad = zip(dx, initial).map { $0 - $1 }

        // Double analytic reference: y ⊙ (w − ⟨w, y⟩) per row, from the Double softmax.
        let yRef = referenceSoftmax(x, rows: rows, cols: cols, log: false).map(Double.init)
        var expected = [Float](repeating: 0, count: x.count)
        for r in 0..<rows {
            let range = (r * cols)..<((r + 1) * cols)
            let s = range.reduce(0.0) { $0 + yRef[$1] * Double(w[$1]) }
            for i in range { expected[i] = Float(yRef[i] * (Double(w[i]) - s)) }
        }
        assertClose(grad, expected, rtol: 1e-4, atol: 1e-6)
        assertClose(grad, finiteDifferenceGradient(of: softmax, at: x, weights: w),
                    rtol: 1e-2, atol: 1e-3)

        backward(y, w, into: &dx) { softmaxBackward($0, $1, $2, rows: rows, cols: cols) }
        assertClose(dx, zip(initial, grad).map { $0 + 2 * $1 }, rtol: 1e-5, atol: 1e-6)
    }

    func testLogSoftmaxBackward() {
        let x = randomArray(rows * cols, seed: 8, low: -3, high: 3)
        let y = logSoftmax(x), w = randomArray(rows * cols, seed: 9)
        let initial = randomArray(rows * cols, seed: 10)
        var dx = initial
        backward(y, w, into: &dx) { logSoftmaxBackward($0, $1, $2, rows: rows, cols: cols) }
        let grad = zip(dx, initial).map { $0 - $1 }

        let pRef = referenceSoftmax(x, rows: rows, cols: cols, log: false).map(Double.init)
        var expected = [Float](repeating: 0, count: x.count)
        for r in 0..<rows {
            let range = (r * cols)..<((r + 1) * cols)
            let s = range.reduce(0.0) { $0 + Double(w[$1]) }
            for i in range { expected[i] = Float(Double(w[i]) - pRef[i] * s) }
        }
        assertClose(grad, expected, rtol: 1e-4, atol: 1e-6)
        assertClose(grad, finiteDifferenceGradient(of: logSoftmax, at: x, weights: w),
                    rtol: 1e-2, atol: 1e-3)

        backward(y, w, into: &dx) { logSoftmaxBackward($0, $1, $2, rows: rows, cols: cols) }
        assertClose(dx, zip(initial, grad).map { $0 + 2 * $1 }, rtol: 1e-5, atol: 1e-6)
    }
}
