#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Row-wise normalisations over a (rows, cols) row-major matrix: LayerNorm and L2
// normalisation. Forward overwrites `y` and saves per-row statistics for the backward;
// backward adds into its gradients.

/// LayerNorm forward (PyTorch `nn.LayerNorm(cols, eps)`), for each row r:
///
///     μ_r = (1/C) Σ_j x[r, j]
///     σ²_r = (1/C) Σ_j (x[r, j] − μ_r)²        (biased variance, two-pass)
///     rstd_r = 1 / √(σ²_r + eps)
///     y[r, j] = (x[r, j] − μ_r)·rstd_r·γ[j] + β[j]
///
/// Shapes: x, y (rows, cols); gamma, beta (cols); mean, rstd (rows), saved for the
/// backward. `beta == nil` means no bias term.
public func layerNormForward(_ x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                             beta: UnsafePointer<Float>?, _ y: UnsafeMutablePointer<Float>,
                             mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>,
                             rows: Int, cols: Int, eps: Float) {
    let inverseCols = 1 / Float(cols)
    for r in 0..<rows {
        let xr = x + r * cols, yr = y + r * cols
        // Both sums over eight lanes (`rowSum`): a fixed order, vectorised.
        let mu = rowSum(xr, count: cols) * inverseCols
        var squareLanes = SIMD8<Float>(repeating: 0)
        var j = 0
        while j + 8 <= cols {
            let d = load8(xr + j) - mu
            squareLanes += d * d
            j += 8
        }
        var squares = squareLanes.sum()
        while j < cols {
            let d = xr[j] - mu
            squares += d * d
            j += 1
        }
        let s = 1 / sqrtf(squares * inverseCols + eps)
        j = 0
        while j + 8 <= cols {
            var v = (load8(xr + j) - mu) * s * load8(gamma + j)
            if let beta { v += load8(beta + j) }
            UnsafeMutableRawPointer(yr + j).storeBytes(of: v, as: SIMD8<Float>.self)
            j += 8
        }
        while j < cols {
            yr[j] = (xr[j] - mu) * s * gamma[j] + (beta?[j] ?? 0)
            j += 1
        }
        mean[r] = mu
        rstd[r] = s
    }
}

/// LayerNorm backward, with x̂ = (x − μ)·rstd and g = dy ⊙ γ, for each row:
///
///     dx     += rstd·(g − mean_j(g) − x̂ ⊙ mean_j(g ⊙ x̂))
///     dgamma += Σ_r dy ⊙ x̂
///     dbeta  += Σ_r dy
///
/// `mean` and `rstd` are the statistics saved by `layerNormForward`. A `nil` `dgamma`
/// or `dbeta` skips that gradient (frozen parameter).
public func layerNormBackward(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                              gamma: UnsafePointer<Float>,
                              mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                              dx: UnsafeMutablePointer<Float>,
                              dgamma: UnsafeMutablePointer<Float>?,
                              dbeta: UnsafeMutablePointer<Float>?,
                              rows: Int, cols: Int) {
    let inverseCols = 1 / Float(cols)
    for r in 0..<rows {
        let dyr = dy + r * cols, xr = x + r * cols, dxr = dx + r * cols
        let mu = mean[r], s = rstd[r]
        // Two reductions over the row: mean(g) and mean(g ⊙ x̂), eight lanes each.
        var gLanes = SIMD8<Float>(repeating: 0), gxLanes = SIMD8<Float>(repeating: 0)
        var j = 0
        while j + 8 <= cols {
            let g = load8(dyr + j) * load8(gamma + j)
            gLanes += g
            gxLanes += g * (load8(xr + j) - mu)
            j += 8
        }
        var gSum = gLanes.sum(), gxSum = gxLanes.sum()
        while j < cols {
            let g = dyr[j] * gamma[j]
            gSum += g
            gxSum += g * (xr[j] - mu)
            j += 1
        }
        let gMean = gSum * inverseCols, gxhatMean = gxSum * s * inverseCols
        for j in 0..<cols {
            let xhat = (xr[j] - mu) * s
            let g = dyr[j] * gamma[j]
            dxr[j] += s * (g - gMean - xhat * gxhatMean)
        }
        if let dgamma {
            for j in 0..<cols { dgamma[j] += dyr[j] * (xr[j] - mu) * s }
        }
        if let dbeta {
            for j in 0..<cols { dbeta[j] += dyr[j] }
        }
    }
}

/// L2 normalisation forward (PyTorch `F.normalize(x, dim: -1, eps:)`), for each row:
///
///     n_r = ‖x[r, :]‖₂,   y[r, :] = x[r, :] / max(n_r, eps)
///
/// Shapes: x, y (rows, cols); norms (rows) receives the unclamped n_r for the backward.
/// The squared norm is accumulated in Double so long rows lose no precision.
public func l2NormalizeForward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                               norms: UnsafeMutablePointer<Float>, rows: Int, cols: Int,
                               eps: Float = 1e-12) {
    for r in 0..<rows {
        let xr = x + r * cols, yr = y + r * cols
        let n = Float(sumOfSquares(xr, count: cols).squareRoot())
        let inverse = 1 / max(n, eps)
        for j in 0..<cols { yr[j] = xr[j] * inverse }
        norms[r] = n
    }
}

/// L2 normalisation backward from the saved output y and norms n:
///
///     n ≥ eps:  dx += (dy − y·⟨y, dy⟩) / n      (projection onto the tangent space)
///     n < eps:  dx += dy / eps                   (the clamp is constant in x)
///
/// matching PyTorch's gradient of `x / norm.clamp_min(eps)`.
public func l2NormalizeBackward(_ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                                norms: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                                rows: Int, cols: Int, eps: Float = 1e-12) {
    for r in 0..<rows {
        let yr = y + r * cols, dyr = dy + r * cols, dxr = dx + r * cols
        let n = norms[r]
        if n >= eps && n > 0 {
            var projection: Float = 0
            for j in 0..<cols { projection += yr[j] * dyr[j] }
            let inverse = 1 / n
            for j in 0..<cols { dxr[j] += (dyr[j] - yr[j] * projection) * inverse }
        } else {
            let inverse = 1 / eps
            for j in 0..<cols { dxr[j] += dyr[j] * inverse }
        }
    }
}

/// Returns a copy of `rows` (count × dimension) with every row L2-normalised
/// (`l2NormalizeForward`, eps = 1e-12: an all-zero row stays zero).
public func l2NormalizedRows(_ rows: [Float], dimension: Int) -> [Float] {
    precondition(dimension >= 1 && rows.count % dimension == 0,
                 "l2NormalizedRows: \(rows.count) values is not a multiple of dimension \(dimension)")
    var normalized = rows
    let count = rows.count / dimension
    var norms = [Float](repeating: 0, count: count)
    normalized.withUnsafeMutableBufferPointer { y in
        rows.withUnsafeBufferPointer { x in
            l2NormalizeForward(x.baseAddress!, y.baseAddress!, norms: &norms, rows: count, cols: dimension)
        }
    }
    return normalized
}
