import Foundation
import Kernels
import XCTest

final class LayerNormTests: XCTestCase {
    let rows = 4, cols = 16, eps: Float = 1e-5

    /// Double reference y and the per-row (mean, rstd).
    private func reference(_ x: [Float], _ gamma: [Float], _ beta: [Float]?, rows: Int, cols: Int,
                           eps: Float) -> (y: [Float], mean: [Float], rstd: [Float]) {
        var y = [Float](repeating: 0, count: x.count), means: [Float] = [], rstds: [Float] = []
        for r in 0..<rows {
            let row = x[(r * cols)..<((r + 1) * cols)].map(Double.init)
            let mu = row.reduce(0, +) / Double(cols)
            let variance = row.reduce(0) { $0 + ($1 - mu) * ($1 - mu) } / Double(cols)
            let s = 1 / (variance + Double(eps)).squareRoot()
            for j in 0..<cols {
                y[r * cols + j] = Float((row[j] - mu) * s * Double(gamma[j]) + Double(beta?[j] ?? 0))
            }
            means.append(Float(mu)); rstds.append(Float(s))
        }
        return (y, means, rstds)
    }

    /// Runs the forward, returning (y, mean, rstd).
    private func run(_ x: [Float], _ gamma: [Float], _ beta: [Float]?, rows: Int? = nil,
                     cols: Int? = nil) -> (y: [Float], mean: [Float], rstd: [Float]) {
        let rows = rows ?? self.rows, cols = cols ?? self.cols
        var mean = [Float](repeating: .nan, count: rows), rstd = mean
        let y = forward(x) { xp, yp in
            layerNormForward(xp, gamma: gamma, beta: beta, yp, mean: &mean, rstd: &rstd,
                             rows: rows, cols: cols, eps: eps)
        }
        return (y, mean, rstd)
    }

    private func inputs(seed: UInt64) -> (x: [Float], gamma: [Float], beta: [Float]) {
        var x = randomArray(rows * cols, seed: seed, low: -2, high: 2)
        for i in x.indices { x[i] += Float(i / cols) - 1.5 }   // a different mean per row
        return (x, randomArray(cols, seed: seed + 1, low: 0.5, high: 1.5),
                randomArray(cols, seed: seed + 2))
    }

    func testForwardMatchesReference() {
        let (x, gamma, beta) = inputs(seed: 1)
        for b in [beta, nil] {
            let got = run(x, gamma, b), want = reference(x, gamma, b, rows: rows, cols: cols, eps: eps)
            assertClose(got.y, want.y, rtol: 1e-5, atol: 1e-5, "beta \(b == nil ? "nil" : "set")")
            assertClose(got.mean, want.mean, rtol: 1e-6, atol: 1e-6)
            assertClose(got.rstd, want.rstd, rtol: 1e-5)
        }
    }

    /// A large common offset (mean ≫ std) is where a one-pass E[x²] − E[x]² variance
    /// cancels catastrophically; the two-pass form stays accurate.
    func testForwardAccurateWithLargeMean() {
        let rows = 3, cols = 64
        let x = randomArray(rows * cols, seed: 2, low: -1, high: 1).map { $0 + 3000 }
        let gamma = [Float](repeating: 1, count: cols)
        let got = run(x, gamma, nil, rows: rows, cols: cols)
        let want = reference(x, gamma, nil, rows: rows, cols: cols, eps: eps)
        assertClose(got.rstd, want.rstd, rtol: 1e-3)
        assertClose(got.y, want.y, rtol: 1e-3, atol: 1e-3)
    }

    func testBackwardAgainstReferenceAndFiniteDifferences() {
        let (x, gamma, beta) = inputs(seed: 3)
        let w = randomArray(rows * cols, seed: 4)
        let saved = run(x, gamma, beta)
        let dx0 = randomArray(x.count, seed: 5), dgamma0 = randomArray(cols, seed: 6),
            dbeta0 = randomArray(cols, seed: 7)
        var dx = dx0, dgamma = dgamma0, dbeta = dbeta0
        func runBackward() {
            layerNormBackward(w, x, gamma: gamma, mean: saved.mean, rstd: saved.rstd,
                              dx: &dx, dgamma: &dgamma, dbeta: &dbeta, rows: rows, cols: cols)
        }
        runBackward()
        let gx = zip(dx, dx0).map { $0 - $1 }, gg = zip(dgamma, dgamma0).map { $0 - $1 },
            gb = zip(dbeta, dbeta0).map { $0 - $1 }

        // Double analytic reference.
        let ref = reference(x, gamma, beta, rows: rows, cols: cols, eps: eps)
        var rx = [Float](repeating: 0, count: x.count)
        var rg = [Double](repeating: 0, count: cols), rb = rg
        for r in 0..<rows {
            let mu = Double(ref.mean[r]), s = Double(ref.rstd[r])
            let xhat = (0..<cols).map { (Double(x[r * cols + $0]) - mu) * s }
            let g = (0..<cols).map { Double(w[r * cols + $0]) * Double(gamma[$0]) }
            let gMean = g.reduce(0, +) / Double(cols)
            let gxMean = zip(g, xhat).reduce(0) { $0 + $1.0 * $1.1 } / Double(cols)
            for j in 0..<cols {
                rx[r * cols + j] = Float(s * (g[j] - gMean - xhat[j] * gxMean))
                rg[j] += Double(w[r * cols + j]) * xhat[j]
                rb[j] += Double(w[r * cols + j])
            }
        }
        assertClose(gx, rx, rtol: 1e-3, atol: 1e-5, "dx vs Double")
        assertClose(gg, rg.map(Float.init), rtol: 1e-4, atol: 1e-5, "dgamma vs Double")
        assertClose(gb, rb.map(Float.init), rtol: 1e-5, atol: 1e-6, "dbeta vs Double")

        // Finite differences with respect to each input.
        assertClose(gx, finiteDifferenceGradient(of: { self.run($0, gamma, beta).y }, at: x, weights: w),
                    rtol: 1e-2, atol: 1e-3, "dx vs finite differences")
        assertClose(gg, finiteDifferenceGradient(of: { self.run(x, $0, beta).y }, at: gamma, weights: w),
                    rtol: 1e-2, atol: 1e-3, "dgamma vs finite differences")
        assertClose(gb, finiteDifferenceGradient(of: { self.run(x, gamma, $0).y }, at: beta, weights: w),
                    rtol: 1e-2, atol: 1e-3, "dbeta vs finite differences")

        runBackward()
        assertClose(dx, zip(dx0, gx).map { $0 + 2 * $1 }, rtol: 1e-5, atol: 1e-6, "dx accumulates")
        assertClose(dgamma, zip(dgamma0, gg).map { $0 + 2 * $1 }, rtol: 1e-5, atol: 1e-6)
        assertClose(dbeta, zip(dbeta0, gb).map { $0 + 2 * $1 }, rtol: 1e-5, atol: 1e-6)
    }

    /// Frozen parameters (nil gradients) give the same dx.
    func testBackwardWithFrozenParameters() {
        let (x, gamma, beta) = inputs(seed: 8)
        let w = randomArray(rows * cols, seed: 9)
        let saved = run(x, gamma, beta)
        var dxFull = [Float](repeating: 0, count: x.count), dxFrozen = dxFull
        var dgamma = [Float](repeating: 0, count: cols), dbeta = dgamma
        layerNormBackward(w, x, gamma: gamma, mean: saved.mean, rstd: saved.rstd, dx: &dxFull,
                          dgamma: &dgamma, dbeta: &dbeta, rows: rows, cols: cols)
        layerNormBackward(w, x, gamma: gamma, mean: saved.mean, rstd: saved.rstd, dx: &dxFrozen,
                          dgamma: nil, dbeta: nil, rows: rows, cols: cols)
        XCTAssertEqual(dxFull, dxFrozen)
    }
}

final class L2NormalizeTests: XCTestCase {
    let rows = 4, cols = 12

    private func run(_ x: [Float], eps: Float = 1e-12) -> (y: [Float], norms: [Float]) {
        var norms = [Float](repeating: .nan, count: rows)
        let y = forward(x) { l2NormalizeForward($0, $1, norms: &norms, rows: rows, cols: cols, eps: eps) }
        return (y, norms)
    }

    func testForwardMatchesReference() {
        let x = randomArray(rows * cols, seed: 1, low: -3, high: 3)
        let (y, norms) = run(x)
        var want = [Float](repeating: 0, count: x.count), wantNorms: [Float] = []
        for r in 0..<rows {
            let row = x[(r * cols)..<((r + 1) * cols)].map(Double.init)
            let n = row.reduce(0) { $0 + $1 * $1 }.squareRoot()
            for j in 0..<cols { want[r * cols + j] = Float(row[j] / n) }
            wantNorms.append(Float(n))
        }
        assertClose(y, want, rtol: 1e-5, atol: 1e-7)
        assertClose(norms, wantNorms, rtol: 1e-6)
    }

    func testBackwardAgainstReferenceAndFiniteDifferences() {
        let x = randomArray(rows * cols, seed: 2, low: -3, high: 3)
        let w = randomArray(rows * cols, seed: 3)
        let (y, norms) = run(x)
        let dx0 = randomArray(x.count, seed: 4)
        var dx = dx0
        func runBackward() {
            l2NormalizeBackward(y, w, norms: norms, &dx, rows: rows, cols: cols)
        }
        runBackward()
        let grad = zip(dx, dx0).map { $0 - $1 }

        // Double reference: (I − ŷŷᵀ)·w / ‖x‖ per row.
        var want = [Float](repeating: 0, count: x.count)
        for r in 0..<rows {
            let row = x[(r * cols)..<((r + 1) * cols)].map(Double.init)
            let n = row.reduce(0) { $0 + $1 * $1 }.squareRoot()
            let yhat = row.map { $0 / n }
            let p = (0..<cols).reduce(0.0) { $0 + yhat[$1] * Double(w[r * cols + $1]) }
            for j in 0..<cols { want[r * cols + j] = Float((Double(w[r * cols + j]) - yhat[j] * p) / n) }
        }
        assertClose(grad, want, rtol: 1e-4, atol: 1e-6)
        assertClose(grad, finiteDifferenceGradient(of: { self.run($0).y }, at: x, weights: w),
                    rtol: 1e-2, atol: 1e-3)
        runBackward()
        assertClose(dx, zip(dx0, grad).map { $0 + 2 * $1 }, rtol: 1e-5, atol: 1e-6)
    }

    /// Below eps the denominator is the constant eps: y = x/eps and dx = dy/eps
    /// (a zero row maps to zero, with a finite gradient).
    func testNormBelowEpsilon() {
        let eps: Float = 1e-3
        var x = randomArray(rows * cols, seed: 5, low: -1e-5, high: 1e-5)
        for j in 0..<cols { x[j] = 0 }   // row 0 is exactly zero
        let (y, norms) = run(x, eps: eps)
        assertClose(y, x.map { $0 / eps }, rtol: 1e-6)
        XCTAssertEqual(norms[0], 0)
        let w = randomArray(rows * cols, seed: 6)
        var dx = [Float](repeating: 0, count: x.count)
        l2NormalizeBackward(y, w, norms: norms, &dx, rows: rows, cols: cols, eps: eps)
        assertClose(dx, w.map { $0 / eps }, rtol: 1e-6)
        assertClose(dx, finiteDifferenceGradient(of: { self.run($0, eps: eps).y }, at: x, weights: w,
                                                 step: 1e-7),
                    rtol: 1e-2, atol: 1e-1)
    }
}
