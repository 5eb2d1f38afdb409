import Foundation
import Kernels
import XCTest

final class ActivationTests: XCTestCase {
    typealias Forward = (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void
    typealias Backward = (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void

    /// Checks an elementwise activation: forward against a Double reference, backward
    /// against the Double derivative and against central finite differences of the
    /// Float forward, and that backward accumulates (dx += …) rather than overwrites.
    private func checkElementwise(_ x: [Float], forward kernel: Forward, backward: Backward,
                                  reference: (Double) -> Double, derivative: (Double) -> Double,
                                  forwardRtol: Float = 1e-5,
                                  file: StaticString = #filePath, line: UInt = #line) {
        let n = x.count
        let y = forward(x) { kernel($0, $1, n) }
        assertClose(y, x.map { Float(reference(Double($0))) }, rtol: forwardRtol, atol: 1e-6,
                    "forward", file: file, line: line)

        // In place (x == y) gives the same result.
        var inPlace = x
        inPlace.withUnsafeMutableBufferPointer { kernel($0.baseAddress!, $0.baseAddress!, n) }
        XCTAssertEqual(inPlace, y, "in-place forward", file: file, line: line)

        let w = randomArray(n, seed: 99)
        let initial = randomArray(n, seed: 98)
        var dx = initial
        func runBackward() {
            x.withUnsafeBufferPointer { xp in
                w.withUnsafeBufferPointer { wp in
                    dx.withUnsafeMutableBufferPointer { backward(xp.baseAddress!, wp.baseAddress!, $0.baseAddress!, n) }
                }
            }
        }
        runBackward()
        let grad = zip(dx, initial).map { $0 - $1 }
        let analytic = (0..<n).map { Float(derivative(Double(x[$0])) * Double(w[$0])) }
        assertClose(grad, analytic, rtol: 1e-4, atol: 1e-6, "backward vs Double derivative",
                    file: file, line: line)
        let numeric = finiteDifferenceGradient(of: { p in forward(p) { kernel($0, $1, n) } },
                                               at: x, weights: w)
        assertClose(grad, numeric, rtol: 1e-2, atol: 1e-3, "backward vs finite differences",
                    file: file, line: line)
        runBackward()
        assertClose(dx, zip(initial, grad).map { $0 + 2 * $1 }, rtol: 1e-5, atol: 1e-6,
                    "second backward accumulates", file: file, line: line)
    }

    /// Inputs spanning the interesting range, kept ≥ 0.01 away from 0 for kinks.
    private var inputs: [Float] {
        randomArray(200, seed: 7, low: -6, high: 6).map { abs($0) < 0.01 ? $0 + 0.02 : $0 }
            + [-20, -9, 9, 20, 0.5, -0.5]
    }

    func testGELUErf() {
        let phi = { (x: Double) in exp(-x * x / 2) / (2 * Double.pi).squareRoot() }
        let cdf = { (x: Double) in 0.5 * (1 + erf(x / 2.0.squareRoot())) }
        checkElementwise(inputs,
                         forward: { geluForward($0, $1, count: $2, approximation: .erf) },
                         backward: { geluBackward($0, $1, $2, count: $3, approximation: .erf) },
                         reference: { $0 * cdf($0) }, derivative: { cdf($0) + $0 * phi($0) })
    }

    func testGELUTanh() {
        let c = (2 / Double.pi).squareRoot()
        let t = { (x: Double) in tanh(c * (x + 0.044715 * x * x * x)) }
        checkElementwise(inputs,
                         forward: { geluForward($0, $1, count: $2, approximation: .tanh) },
                         backward: { geluBackward($0, $1, $2, count: $3, approximation: .tanh) },
                         reference: { 0.5 * $0 * (1 + t($0)) },
                         derivative: { x in
                             0.5 * (1 + t(x)) + 0.5 * x * (1 - t(x) * t(x)) * c * (1 + 3 * 0.044715 * x * x)
                         })
    }

    func testQuickGELU() {
        let sigma = { (x: Double) in 1 / (1 + exp(-1.702 * x)) }
        checkElementwise(inputs + [-100, 100],
                         forward: { quickGELUForward($0, $1, count: $2) },
                         backward: { quickGELUBackward($0, $1, $2, count: $3) },
                         reference: { $0 * sigma($0) },
                         derivative: { sigma($0) + 1.702 * $0 * sigma($0) * (1 - sigma($0)) })
    }

    func testLeakyReLU() {
        let slope: Float = 0.2
        checkElementwise(inputs,
                         forward: { leakyReLUForward($0, $1, count: $2, slope: slope) },
                         backward: { leakyReLUBackward($0, $1, $2, count: $3, slope: slope) },
                         reference: { $0 > 0 ? $0 : 0.2 * $0 },
                         derivative: { $0 > 0 ? 1 : 0.2 })
    }

    /// Named points: GELU(0) = 0, GELU′(0) = ½; large |x| saturates without NaN.
    func testGELUSpecialValues() {
        for approximation in [GELUApproximation.erf, .tanh] {
            let x: [Float] = [0, 50, -50]
            let y = forward(x) { geluForward($0, $1, count: 3, approximation: approximation) }
            XCTAssertEqual(y, [0, 50, -0], "\(approximation)")
            var dx = [Float](repeating: 0, count: 3)
            let ones = [Float](repeating: 1, count: 3)
            dx.withUnsafeMutableBufferPointer {
                geluBackward(x, ones, $0.baseAddress!, count: 3, approximation: approximation)
            }
            XCTAssertEqual(dx, [0.5, 1, 0], "\(approximation)")
        }
    }

    /// The biased forms (the Linear's bias added in the activation's pass) equal the plain
    /// kernels on the Float sum x + b, bit for bit, and leave x unbiased; their backward
    /// overwrites dx (the plain one adds, here onto zeros).
    func testBiasedFormsEqualThePlainKernelsOnTheSum() {
        let rows = 5, cols = 37   // 37: a row length that leaves a remainder after the vector loop
        let x = randomArray(rows * cols, seed: 11, low: -5, high: 5)
        let bias = randomArray(cols, seed: 12, low: -1, high: 1)
        let sum = (0..<(rows * cols)).map { x[$0] + bias[$0 % cols] }
        let dy = randomArray(rows * cols, seed: 13)
        let initial = randomArray(rows * cols, seed: 14)
        typealias Biased = (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void
        typealias BiasedBackward = (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>,
                                    UnsafeMutablePointer<Float>) -> Void
        let cases: [(String, Forward, Backward, Biased, BiasedBackward)] = [
            ("gelu", { geluForward($0, $1, count: $2, approximation: .erf) },
             { geluBackward($0, $1, $2, count: $3, approximation: .erf) },
             { geluForward($0, bias: $1, $2, rows: rows, cols: cols, approximation: .erf) },
             { geluBackward($0, bias: $1, $2, $3, rows: rows, cols: cols, approximation: .erf) }),
            ("gelu-tanh", { geluForward($0, $1, count: $2, approximation: .tanh) },
             { geluBackward($0, $1, $2, count: $3, approximation: .tanh) },
             { geluForward($0, bias: $1, $2, rows: rows, cols: cols, approximation: .tanh) },
             { geluBackward($0, bias: $1, $2, $3, rows: rows, cols: cols, approximation: .tanh) }),
            ("quick-gelu", { quickGELUForward($0, $1, count: $2) }, { quickGELUBackward($0, $1, $2, count: $3) },
             { quickGELUForward($0, bias: $1, $2, rows: rows, cols: cols) },
             { quickGELUBackward($0, bias: $1, $2, $3, rows: rows, cols: cols) }),
        ]
        for (name, plain, plainBackward, biased, biasedBackward) in cases {
            let expected = forward(sum) { plain($0, $1, rows * cols) }
            var y = [Float](repeating: 0, count: rows * cols)
            y.withUnsafeMutableBufferPointer { biased(x, bias, $0.baseAddress!) }
            XCTAssertEqual(y, expected, "\(name) forward")
            var expectedDx = [Float](repeating: 0, count: rows * cols), dx = initial
            expectedDx.withUnsafeMutableBufferPointer { plainBackward(sum, dy, $0.baseAddress!, rows * cols) }
            dx.withUnsafeMutableBufferPointer { biasedBackward(x, bias, dy, $0.baseAddress!) }
            XCTAssertEqual(dx, expectedDx, "\(name) backward overwrites")
        }
    }
}
