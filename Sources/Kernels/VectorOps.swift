import CBLAS

// Bias terms and level-1 vector operations. The level-1 routines go through the BLAS
// library (whose vector length is a 32-bit integer); longer vectors are processed in chunks.

/// Largest count passed to one level-1 BLAS call.
@usableFromInline let blasChunk = Int(Int32.max)

/// Adds a bias to every row: y[r, :] += bias. Shapes: y (rows, cols), bias (cols).
public func addBiasRows(_ y: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>,
                        rows: Int, cols: Int) {
    for r in 0..<rows {
        let yr = y + r * cols
        for j in 0..<cols { yr[j] += bias[j] }
    }
}

/// Bias gradient: dbias += Σ_r dy[r, :]. Shapes: dy (rows, cols), dbias (cols).
public func sumRowsInto(_ dy: UnsafePointer<Float>, _ dbias: UnsafeMutablePointer<Float>,
                        rows: Int, cols: Int) {
    for r in 0..<rows {
        let dyr = dy + r * cols
        for j in 0..<cols { dbias[j] += dyr[j] }
    }
}

/// y += α·x over `count` elements (`cblas_saxpy`).
public func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                 count: Int) {
    var offset = 0
    while offset < count {
        let n = min(count - offset, blasChunk)
        cblas_saxpy(Int32(n), alpha, x + offset, 1, y + offset, 1)
        offset += n
    }
}

/// x ← α·x over `count` elements (`cblas_sscal`).
public func scale(_ x: UnsafeMutablePointer<Float>, by alpha: Float, count: Int) {
    var offset = 0
    while offset < count {
        let n = min(count - offset, blasChunk)
        cblas_sscal(Int32(n), alpha, x + offset, 1)
        offset += n
    }
}

/// ⟨x, y⟩ = Σ_i x[i]·y[i] over `count` elements (`cblas_sdot`, Float accumulation).
public func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, count: Int) -> Float {
    var result: Float = 0
    var offset = 0
    while offset < count {
        let n = min(count - offset, blasChunk)
        result += cblas_sdot(Int32(n), x + offset, 1, y + offset, 1)
        offset += n
    }
    return result
}

/// Σ_i x[i]², accumulated in Double (for gradient norms over millions of parameters,
/// where a Float sum would lose the small terms). Four independent accumulators keep
/// the loop from being latency-bound on one addition chain.
public func sumOfSquares(_ x: UnsafePointer<Float>, count: Int) -> Double {
    var s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    var i = 0
    while i + 4 <= count {
        let a = Double(x[i]), b = Double(x[i + 1]), c = Double(x[i + 2]), d = Double(x[i + 3])
        s0 += a * a; s1 += b * b; s2 += c * c; s3 += d * d
        i += 4
    }
    while i < count {
        let a = Double(x[i])
        s0 += a * a
        i += 1
    }
    return (s0 + s1) + (s2 + s3)
}

// Reductions over one row, for the row-wise kernels (softmax, LayerNorm). Eight partial
// results (one SIMD8 register pair) instead of one scalar chain: a Float loop cannot be
// reordered by the compiler, so a scalar sum runs at one add per add-latency, while this
// vectorises and overlaps eight. The order of additions (lane i sums elements ≡ i mod 8)
// is fixed, so results are deterministic.

@inline(__always)
func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

/// Σ_i x[i].
@inline(__always)
func rowSum(_ x: UnsafePointer<Float>, count: Int) -> Float {
    var lanes = SIMD8<Float>(repeating: 0)
    var i = 0
    while i + 8 <= count { lanes += load8(x + i); i += 8 }
    var s = lanes.sum()
    while i < count { s += x[i]; i += 1 }
    return s
}

/// Σ_i x[i]·y[i].
@inline(__always)
func rowDot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, count: Int) -> Float {
    var lanes = SIMD8<Float>(repeating: 0)
    var i = 0
    while i + 8 <= count { lanes += load8(x + i) * load8(y + i); i += 8 }
    var s = lanes.sum()
    while i < count { s += x[i] * y[i]; i += 1 }
    return s
}

/// max_i x[i], ignoring NaN entries (−∞ for an empty or all-NaN row).
@inline(__always)
func rowMaximum(_ x: UnsafePointer<Float>, count: Int) -> Float {
    var lanes = SIMD8<Float>(repeating: -.infinity)
    var i = 0
    while i + 8 <= count {
        let v = load8(x + i)
        lanes.replace(with: v, where: v .> lanes)
        i += 8
    }
    var m = lanes.max()
    while i < count { if x[i] > m { m = x[i] }; i += 1 }
    return m
}
