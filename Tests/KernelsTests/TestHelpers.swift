import Kernels
import Numerics
import XCTest

/// Asserts a and b have equal length and agree elementwise within
/// |a − b| ≤ max(atol, rtol·max(|a|, |b|)) (`isApproximatelyEqual`); reports the worst
/// offending elements at the caller's line.
func assertClose(_ a: [Float], _ b: [Float], rtol: Float, atol: Float = 0,
                 _ message: @autoclosure () -> String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
    guard a.count == b.count else {
        XCTFail("assertClose: lengths differ, \(a.count) vs \(b.count). \(message())",
                file: file, line: line)
        return
    }
    var failures: [(index: Int, excess: Float)] = []
    for i in a.indices where !a[i].isApproximatelyEqual(to: b[i], absoluteTolerance: atol,
                                                          relativeTolerance: rtol) {
        let allowed = max(atol, rtol * max(abs(a[i]), abs(b[i])))
        failures.append((i, abs(a[i] - b[i]) / max(allowed, .leastNonzeroMagnitude)))
    }
    guard !failures.isEmpty else { return }
    let worst = failures.sorted { !($0.excess <= $1.excess) }.prefix(5)
        .map { "[\($0.index)] \(a[$0.index]) vs \(b[$0.index])" }.joined(separator: ", ")
    XCTFail("assertClose: \(failures.count) of \(a.count) elements differ beyond rtol \(rtol), "
            + "atol \(atol); worst: \(worst). \(message())", file: file, line: line)
}

/// `count` values uniform in [low, high) from a seeded generator.
func randomArray(_ count: Int, seed: UInt64, low: Float = -1, high: Float = 1) -> [Float] {
    var rng = RandomGenerator(seed: seed)
    var out = [Float](repeating: 0, count: count)
    out.withUnsafeMutableBufferPointer {
        rng.fillUniform($0.baseAddress!, count: count, low: low, high: high)
    }
    return out
}

/// Runs a pointer-form forward `body(x, y)` on an array, returning y (`outCount` values,
/// pre-filled with NaN so an unwritten output shows up).
func forward(_ x: [Float], outCount: Int? = nil,
             _ body: (UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void) -> [Float] {
    var y = [Float](repeating: .nan, count: outCount ?? x.count)
    x.withUnsafeBufferPointer { xp in
        y.withUnsafeMutableBufferPointer { yp in body(xp.baseAddress!, yp.baseAddress!) }
    }
    return y
}

/// L = Σ w⊙y accumulated in Double: the scalar loss used by the gradient checks, so
/// that ∂L/∂y = w.
func weightedSum(_ y: [Float], _ w: [Float]) -> Double {
    precondition(y.count == w.count)
    var s = 0.0
    for i in y.indices { s += Double(y[i]) * Double(w[i]) }
    return s
}

/// Central finite-difference gradient of L(x) = Σ w⊙f(x) with respect to every element
/// of x. The denominator is the actual Float perturbation (x + h) − (x − h), so rounding
/// of the perturbed input does not bias the estimate.
func finiteDifferenceGradient(of f: ([Float]) -> [Float], at x: [Float], weights w: [Float],
                              step: Float = 1e-3) -> [Float] {
    var grad = [Float](repeating: 0, count: x.count)
    var probe = x
    for i in x.indices {
        let h = step * max(1, abs(x[i]))
        let plus = x[i] + h, minus = x[i] - h
        probe[i] = plus
        let lPlus = weightedSum(f(probe), w)
        probe[i] = minus
        let lMinus = weightedSum(f(probe), w)
        probe[i] = x[i]
        grad[i] = Float((lPlus - lMinus) / (Double(plus) - Double(minus)))
    }
    return grad
}

/// Row-major Double reference GEMM: C ← α·op(A)·op(B) + β·C on strided storage.
func referenceGEMM(_ transA: Transpose, _ transB: Transpose, m: Int, n: Int, k: Int,
                   alpha: Double, a: [Float], lda: Int, b: [Float], ldb: Int,
                   beta: Double, c: inout [Float], ldc: Int) {
    for i in 0..<m {
        for j in 0..<n {
            var s = 0.0
            for p in 0..<k {
                let av = transA == .none ? a[i * lda + p] : a[p * lda + i]
                let bv = transB == .none ? b[p * ldb + j] : b[j * ldb + p]
                s += Double(av) * Double(bv)
            }
            // β = 0 ignores C entirely (BLAS semantics: NaN in C must not propagate).
            let old = beta == 0 ? 0 : beta * Double(c[i * ldc + j])
            c[i * ldc + j] = Float(alpha * s + old)
        }
    }
}
