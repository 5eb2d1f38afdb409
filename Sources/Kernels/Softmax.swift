#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Row-wise softmax and log-softmax over a (rows, cols) row-major matrix.
// Forward overwrites `y` (and may run in place, x == y); backward adds into `dx`.
// Each row must hold at least one finite value: entries of −∞ (masked) are fine and get
// probability 0, but a row that is entirely −∞ yields NaN, as in PyTorch.

/// Softmax forward, y[r, j] = exp(x[r, j] − m_r) / Σ_k exp(x[r, k] − m_r) with
/// m_r = max_k x[r, k]. Subtracting the row maximum makes every exponent ≤ 0, so large
/// logits cannot overflow. `x` may equal `y`. Each pass over a row vectorises
/// (`branchFreeExp`, eight-lane reductions).
public func softmaxForward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                           rows: Int, cols: Int) {
    for r in 0..<rows {
        let xr = x + r * cols   // (cols)
        let yr = y + r * cols   // (cols)
        // Work in place on y: a loop reading x and writing y vectorises only when the
        // compiler can prove they do not overlap, which fails for x == y (attention).
        if UnsafePointer(yr) != xr { yr.update(from: xr, count: cols) }
        softmaxRowInPlace(yr, count: cols)
    }
}

/// The softmax of one row in place (as `softmaxForward`), returning its maximum m and
/// 1/Σ_k exp(x_k − m): with them `softmaxRowRecompute` rebuilds the same row, bit for
/// bit, from the same scores.
@discardableResult
public func softmaxRowInPlace(_ row: UnsafeMutablePointer<Float>, count: Int) -> (maximum: Float, inverseSum: Float) {
    let maxValue = rowMaximum(row, count: count)
    for j in 0..<count { row[j] = branchFreeExp(row[j] - maxValue) }
    let inverseSum = 1 / rowSum(row, count: count)
    for j in 0..<count { row[j] *= inverseSum }
    return (maxValue, inverseSum)
}

/// p_j = exp(s_j − maximum)·inverseSum in place: the probabilities `softmaxRowInPlace`
/// made from the same scores s, with its two statistics.
public func softmaxRowRecompute(_ row: UnsafeMutablePointer<Float>, count: Int, maximum: Float, inverseSum: Float) {
    for j in 0..<count { row[j] = branchFreeExp(row[j] - maximum) * inverseSum }
}

/// Softmax backward from the saved output y:
///
///     dx[r, :] += y[r, :] ⊙ (dy[r, :] − Σ_k dy[r, k]·y[r, k])
///
/// (the Jacobian of softmax is diag(y) − y·yᵀ, which is symmetric).
public func softmaxBackward(_ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                            _ dx: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
    for r in 0..<rows {
        let yr = y + r * cols, dyr = dy + r * cols, dxr = dx + r * cols
        let weighted = rowDot(dyr, yr, count: cols)
        for j in 0..<cols { dxr[j] += yr[j] * (dyr[j] - weighted) }
    }
}

/// Softmax backward in place, dp ← y ⊙ (dp − Σ_k dp_k·y_k) row by row: the gradient of the
/// scores replaces that of the probabilities (`softmaxBackward` without a separate dx).
public func softmaxBackwardInPlace(_ y: UnsafePointer<Float>, _ dp: UnsafeMutablePointer<Float>,
                                   rows: Int, cols: Int) {
    for r in 0..<rows {
        let yr = y + r * cols, dr = dp + r * cols
        let weighted = rowDot(UnsafePointer(dr), yr, count: cols)
        for j in 0..<cols { dr[j] = yr[j] * (dr[j] - weighted) }
    }
}

/// Log-softmax forward, y[r, j] = x[r, j] − m_r − log Σ_k exp(x[r, k] − m_r) with
/// m_r = max_k x[r, k] (log-sum-exp with the maximum factored out). `x` may equal `y`.
public func logSoftmaxForward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                              rows: Int, cols: Int) {
    for r in 0..<rows {
        let xr = x + r * cols, yr = y + r * cols
        var maxValue = -Float.infinity
        for j in 0..<cols where xr[j] > maxValue { maxValue = xr[j] }
        var sum: Float = 0
        for j in 0..<cols { sum += expf(xr[j] - maxValue) }
        let shift = maxValue + logf(sum)
        for j in 0..<cols { yr[j] = xr[j] - shift }
    }
}

/// Log-softmax backward from the saved output y (softmax = exp(y)):
///
///     dx[r, j] += dy[r, j] − exp(y[r, j])·Σ_k dy[r, k]
public func logSoftmaxBackward(_ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                               _ dx: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
    for r in 0..<rows {
        let yr = y + r * cols, dyr = dy + r * cols, dxr = dx + r * cols
        var sum: Float = 0
        for j in 0..<cols { sum += dyr[j] }
        for j in 0..<cols { dxr[j] += dyr[j] - expf(yr[j]) * sum }
    }
}
