import CBLAS

/// Whether a GEMM operand is used as stored or transposed.
public enum Transpose: Sendable {
    case none
    case transposed

    @inline(__always) var cblas: CBLAS_TRANSPOSE { self == .none ? CblasNoTrans : CblasTrans }
}

/// Single-precision general matrix multiply on row-major storage, through the BLAS library
/// the package was built with (`BLASRuntime.library`):
///
///     C ← α · op(A) · op(B) + β · C,   op(A): m×k,  op(B): k×n,  C: m×n
///
/// `lda`, `ldb`, `ldc` are the row strides of the matrices *as stored* (so for
/// `transA == .transposed`, A is stored k×m and `lda ≥ m`). `beta = 1` accumulates,
/// which is how backward passes add into gradients. This is the only way matrix
/// products are computed in the project.
@inline(__always)
public func gemm(_ transA: Transpose, _ transB: Transpose,
                 m: Int, n: Int, k: Int,
                 alpha: Float = 1,
                 a: UnsafePointer<Float>, lda: Int,
                 b: UnsafePointer<Float>, ldb: Int,
                 beta: Float,
                 c: UnsafeMutablePointer<Float>, ldc: Int) {
    if m == 0 || n == 0 { return }
    if k == 0 {
        // BLAS leaves C untouched only when beta == 1; make the k = 0 case explicit.
        scaleInPlace(c, rows: m, cols: n, ld: ldc, by: beta)
        return
    }
    let profiling = GEMMStatistics.isEnabled   // off: one predictable branch per call
    let start = profiling ? Stopwatch.nanoseconds() : 0
    cblas_sgemm(CblasRowMajor, transA.cblas, transB.cblas,
                Int32(m), Int32(n), Int32(k), alpha,
                a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    if profiling {
        GEMMStatistics.record(flops: gemmFlops(m: m, n: n, k: k),
                              nanoseconds: Stopwatch.nanoseconds() &- start)
    }
}

/// `gemm` with densely packed operands: leading dimensions follow from the shapes.
@inline(__always)
public func gemm(_ transA: Transpose, _ transB: Transpose,
                 m: Int, n: Int, k: Int,
                 alpha: Float = 1,
                 a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                 beta: Float, c: UnsafeMutablePointer<Float>) {
    gemm(transA, transB, m: m, n: n, k: k, alpha: alpha,
         a: a, lda: transA == .none ? k : m,
         b: b, ldb: transB == .none ? n : k,
         beta: beta, c: c, ldc: n)
}

/// A batch of independent GEMMs over equally strided operands (for example one per
/// attention head): for each `i < batch`, C_i ← α·op(A_i)·op(B_i) + β·C_i with
/// A_i = a + i·strideA and so on.
public func gemmStridedBatched(_ transA: Transpose, _ transB: Transpose,
                               m: Int, n: Int, k: Int, alpha: Float = 1,
                               a: UnsafePointer<Float>, lda: Int, strideA: Int,
                               b: UnsafePointer<Float>, ldb: Int, strideB: Int,
                               beta: Float,
                               c: UnsafeMutablePointer<Float>, ldc: Int, strideC: Int,
                               batch: Int) {
    for i in 0..<batch {
        gemm(transA, transB, m: m, n: n, k: k, alpha: alpha,
             a: a + i * strideA, lda: lda, b: b + i * strideB, ldb: ldb,
             beta: beta, c: c + i * strideC, ldc: ldc)
    }
}

/// C ← β·C on an m×n block with row stride `ld` (β = 0 writes exact zeros).
@inline(__always)
func scaleInPlace(_ c: UnsafeMutablePointer<Float>, rows: Int, cols: Int, ld: Int, by beta: Float) {
    if beta == 1 { return }
    for r in 0..<rows {
        let row = c + r * ld
        if beta == 0 { row.update(repeating: 0, count: cols) } else {
            for j in 0..<cols { row[j] *= beta }
        }
    }
}

/// Number of floating-point operations of one m×n×k GEMM (a multiply and an add per term).
@inline(__always)
public func gemmFlops(m: Int, n: Int, k: Int) -> Double { 2 * Double(m) * Double(n) * Double(k) }
