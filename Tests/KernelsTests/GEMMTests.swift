import Kernels
import XCTest

final class GEMMTests: XCTestCase {
    /// Stored (rows, cols) of op(X) given its logical (r, c) shape.
    private func storedShape(_ t: Transpose, rows: Int, cols: Int) -> (rows: Int, cols: Int) {
        t == .none ? (rows, cols) : (cols, rows)
    }

    /// All four transpose combinations × β ∈ {0, 1, 0.5}, α ≠ 1, padded leading dimensions,
    /// at a small odd shape and one large enough for OpenBLAS's blocked kernels.
    func testAllTransposeCombinationsAndBetasWithPaddedLeadingDimensions() {
        let shapes = [(m: 7, n: 5, k: 9), (m: 67, n: 45, k: 150)]
        let sentinel: Float = 12345
        var seed: UInt64 = 1
        for shape in shapes {
            let (m, n, k) = shape
            for transA in [Transpose.none, .transposed] {
                for transB in [Transpose.none, .transposed] {
                    for beta: Float in [0, 1, 0.5] {
                        seed += 1
                        let sa = storedShape(transA, rows: m, cols: k)
                        let sb = storedShape(transB, rows: k, cols: n)
                        let lda = sa.cols + 3, ldb = sb.cols + 2, ldc = n + 4
                        let a = randomArray(sa.rows * lda, seed: seed * 3)
                        let b = randomArray(sb.rows * ldb, seed: seed * 3 + 1)
                        var c = randomArray(m * ldc, seed: seed * 3 + 2)
                        for i in 0..<m {
                            for j in n..<ldc { c[i * ldc + j] = sentinel }   // padding
                            if beta == 0 { for j in 0..<n { c[i * ldc + j] = .nan } }
                        }
                        var expected = c
                        referenceGEMM(transA, transB, m: m, n: n, k: k, alpha: 0.75,
                                      a: a, lda: lda, b: b, ldb: ldb,
                                      beta: Double(beta), c: &expected, ldc: ldc)
                        a.withUnsafeBufferPointer { ap in
                            b.withUnsafeBufferPointer { bp in
                                c.withUnsafeMutableBufferPointer { cp in
                                    gemm(transA, transB, m: m, n: n, k: k, alpha: 0.75,
                                         a: ap.baseAddress!, lda: lda,
                                         b: bp.baseAddress!, ldb: ldb, beta: beta,
                                         c: cp.baseAddress!, ldc: ldc)
                                }
                            }
                        }
                        assertClose(c, expected, rtol: 1e-4, atol: 1e-4,
                                    "m \(m) n \(n) k \(k) \(transA)/\(transB) beta \(beta)")
                        for i in 0..<m {
                            for j in n..<ldc where c[i * ldc + j] != sentinel {
                                XCTFail("gemm wrote outside C's columns at (\(i), \(j))")
                            }
                        }
                    }
                }
            }
        }
    }

    /// The packed overload derives leading dimensions from the shapes (y = x·Wᵀ layout).
    func testPackedOverloadLinearLayerLayout() {
        let m = 6, n = 4, k = 5
        let x = randomArray(m * k, seed: 10), w = randomArray(n * k, seed: 11)
        var expected = [Float](repeating: 0, count: m * n)
        referenceGEMM(.none, .transposed, m: m, n: n, k: k, alpha: 1, a: x, lda: k, b: w,
                      ldb: k, beta: 0, c: &expected, ldc: n)
        let y = forward(x, outCount: m * n) { xp, yp in
            w.withUnsafeBufferPointer {
                gemm(.none, .transposed, m: m, n: n, k: k, a: xp, b: $0.baseAddress!, beta: 0, c: yp)
            }
        }
        assertClose(y, expected, rtol: 1e-5, atol: 1e-6)
    }

    /// k = 0: the product is empty, so C ← β·C exactly (and β = 0 clears NaN).
    func testEmptyInnerDimensionScalesC() {
        let a: [Float] = [0], b: [Float] = [0]
        for (beta, initial, want) in [(Float(0.5), Float(4), Float(2)), (0, .nan, 0), (1, 3, 3)] {
            var c = [Float](repeating: initial, count: 6)
            c.withUnsafeMutableBufferPointer { cp in
                gemm(.none, .none, m: 2, n: 3, k: 0, a: a, lda: 1, b: b, ldb: 3, beta: beta,
                     c: cp.baseAddress!, ldc: 3)
            }
            XCTAssertEqual(c, [Float](repeating: want, count: 6), "beta \(beta)")
        }
    }

    /// Attention scores per head straight out of an interleaved qkv buffer (T, 3E):
    /// S_h = Q_h·K_hᵀ with Q_h at column h·d, K_h at E + h·d, row stride 3E; then
    /// O_h = S_h·V_h with accumulation (β = 1) into a (T, E) buffer.
    func testStridedBatchedOverInterleavedHeads() {
        let t = 9, heads = 3, d = 4, e = heads * d
        let qkv = randomArray(t * 3 * e, seed: 20)
        var scores = [Float](repeating: .nan, count: heads * t * t)
        qkv.withUnsafeBufferPointer { q in
            scores.withUnsafeMutableBufferPointer { s in
                gemmStridedBatched(.none, .transposed, m: t, n: t, k: d,
                                   a: q.baseAddress!, lda: 3 * e, strideA: d,
                                   b: q.baseAddress! + e, ldb: 3 * e, strideB: d,
                                   beta: 0, c: s.baseAddress!, ldc: t, strideC: t * t,
                                   batch: heads)
            }
        }
        var out = randomArray(t * e, seed: 21)
        var expectedOut = out
        qkv.withUnsafeBufferPointer { q in
            scores.withUnsafeBufferPointer { s in
                out.withUnsafeMutableBufferPointer { o in
                    gemmStridedBatched(.none, .none, m: t, n: d, k: t, alpha: 0.5,
                                       a: s.baseAddress!, lda: t, strideA: t * t,
                                       b: q.baseAddress! + 2 * e, ldb: 3 * e, strideB: d,
                                       beta: 1, c: o.baseAddress!, ldc: e, strideC: d,
                                       batch: heads)
                }
            }
        }
        for h in 0..<heads {
            let qh = columns(qkv, rows: t, ld: 3 * e, from: h * d, count: d)
            let kh = columns(qkv, rows: t, ld: 3 * e, from: e + h * d, count: d)
            let vh = columns(qkv, rows: t, ld: 3 * e, from: 2 * e + h * d, count: d)
            var sh = [Float](repeating: 0, count: t * t)
            referenceGEMM(.none, .transposed, m: t, n: t, k: d, alpha: 1, a: qh, lda: d,
                          b: kh, ldb: d, beta: 0, c: &sh, ldc: t)
            assertClose(Array(scores[(h * t * t)..<((h + 1) * t * t)]), sh, rtol: 1e-5, atol: 1e-5,
                        "scores head \(h)")
            // Reference for the strided output block of head h (columns h·d..<h·d+d).
            var oh = columns(expectedOut, rows: t, ld: e, from: h * d, count: d)
            referenceGEMM(.none, .none, m: t, n: d, k: t, alpha: 0.5, a: sh, lda: t,
                          b: vh, ldb: d, beta: 1, c: &oh, ldc: d)
            for r in 0..<t { for j in 0..<d { expectedOut[r * e + h * d + j] = oh[r * d + j] } }
        }
        assertClose(out, expectedOut, rtol: 1e-4, atol: 1e-5)
    }

    /// Columns first..<first+count of a (rows, ld) row-major matrix, packed.
    private func columns(_ x: [Float], rows: Int, ld: Int, from first: Int, count: Int) -> [Float] {
        var out: [Float] = []
        for r in 0..<rows { out.append(contentsOf: x[(r * ld + first)..<(r * ld + first + count)]) }
        return out
    }

    func testGemmFlops() {
        XCTAssertEqual(gemmFlops(m: 2, n: 3, k: 4), 48)
    }
}
