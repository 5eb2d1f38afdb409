import Kernels
@testable import Model
import XCTest

/// A Linear with LoRA and a bias whose input is at least as wide as its output runs its
/// forward folded (x·[W; A]ᵀ in one GEMM), a narrower one the separate products; both must
/// equal the Double formulas y = xWᵀ + b + s·(xAᵀ)Bᵀ, dX = dY·W + s·(dY·B)·A,
/// dB = s·dYᵀ(xAᵀ), dA = s·(dY·B)ᵀx. Tolerance: each value is a Float dot product of
/// length ≤ in + r (48 here), within γ_48 ≈ 2.9·10⁻⁶ of its terms' magnitude; 1e-5
/// relative to the largest value leaves room for the two chained products of the LoRA path.
final class LoRAFoldTests: XCTestCase {
    func testFoldedLinearMatchesTheDoubleFormulas() {
        for (inFeatures, outFeatures) in [(40, 24), (24, 40)] {   // folded, then not
            let store = ParameterStore()
            let linear = Linear("fc", in: inFeatures, out: outFeatures, region: .frozen,
                                lora: LoRAConfig(rank: 8, alpha: 4), store: store, rowsPerSample: SampleRows(1))
            store.allocate(seed: 5)
            var rng = RandomGenerator(seed: 6)
            for p in [linear.weight, linear.bias!, linear.loraA!, linear.loraB!] {
                rng.fillGaussian(p.value, count: p.count, std: 0.3)
            }
            let rows = 7
            var x = [Float](repeating: 0, count: rows * inFeatures), dy = [Float](repeating: 0, count: rows * outFeatures)
            rng.fillGaussian(&x, count: x.count)
            rng.fillGaussian(&dy, count: dy.count)
            var y = [Float](repeating: 0, count: rows * outFeatures), dx = [Float](repeating: 0, count: rows * inFeatures)
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer { linear.forward(xp.baseAddress!, $0.baseAddress!, rows: rows) }
                dy.withUnsafeBufferPointer { dyp in
                    dx.withUnsafeMutableBufferPointer { linear.backward(dyp.baseAddress!, dx: $0.baseAddress!) }
                }
            }
            let W = values(linear.weight), b = values(linear.bias!), A = values(linear.loraA!), B = values(linear.loraB!)
            let s = Double(linear.lora!.scale), r = 8
            func h(_ i: Int, _ q: Int) -> Double { (0..<inFeatures).reduce(0) { $0 + Double(x[i * inFeatures + $1]) * A[q * inFeatures + $1] } }
            func dh(_ i: Int, _ q: Int) -> Double { s * (0..<outFeatures).reduce(0) { $0 + Double(dy[i * outFeatures + $1]) * B[$1 * r + q] } }
            var yRef = [Double](), dxRef = [Double](), dARef = [Double](repeating: 0, count: r * inFeatures)
            var dBRef = [Double](repeating: 0, count: outFeatures * r)
            for i in 0..<rows {
                let hi = (0..<r).map { h(i, $0) }, dhi = (0..<r).map { dh(i, $0) }
                for o in 0..<outFeatures {
                    let base = (0..<inFeatures).reduce(b[o]) { $0 + Double(x[i * inFeatures + $1]) * W[o * inFeatures + $1] }
                    yRef.append(base + s * (0..<r).reduce(0) { $0 + hi[$1] * B[o * r + $1] })
                    for q in 0..<r { dBRef[o * r + q] += s * Double(dy[i * outFeatures + o]) * hi[q] }
                }
                for j in 0..<inFeatures {
                    let base = (0..<outFeatures).reduce(0.0) { $0 + Double(dy[i * outFeatures + $1]) * W[$1 * inFeatures + j] }
                    dxRef.append(base + (0..<r).reduce(0) { $0 + dhi[$1] * A[$1 * inFeatures + j] })
                    for q in 0..<r { dARef[q * inFeatures + j] += dhi[q] * Double(x[i * inFeatures + j]) }
                }
            }
            let what = "\(inFeatures)→\(outFeatures)"
            assertClose(y, yRef, "y \(what)")
            assertClose(dx, dxRef, "dX \(what)")
            assertClose(Array(UnsafeBufferPointer(start: linear.loraA!.gradient!, count: r * inFeatures)), dARef, "dA \(what)")
            assertClose(Array(UnsafeBufferPointer(start: linear.loraB!.gradient!, count: outFeatures * r)), dBRef, "dB \(what)")
        }
    }

    private func values(_ p: Parameter) -> [Double] { UnsafeBufferPointer(start: p.value, count: p.count).map(Double.init) }

    private func assertClose(_ a: [Float], _ b: [Double], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        let scale = b.reduce(0) { max($0, abs($1)) }
        XCTAssertGreaterThan(scale, 0, what, file: file, line: line)
        let worst = zip(a, b).reduce(0) { max($0, abs(Double($1.0) - $1.1)) }
        XCTAssertLessThanOrEqual(worst / scale, 1e-5, what, file: file, line: line)
    }
}
