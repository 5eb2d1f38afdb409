#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Elementwise activations. Every forward overwrites `y`; every backward *adds* the
// input gradient into `dx` (dx += f′(x) ⊙ dy), so gradients from several consumers
// accumulate without extra buffers. `x` may equal `y` in the forwards (in place).

/// Which formula `geluForward`/`geluBackward` use, matching PyTorch's
/// `nn.GELU(approximate: "none" | "tanh")`.
public enum GELUApproximation: Sendable {
    /// GELU(x) = x·Φ(x) = ½x·(1 + erf(x/√2)), the exact form (ViT, BERT).
    case erf
    /// GELU(x) ≈ ½x·(1 + tanh(√(2/π)·(x + 0.044715x³))), the GPT-2 form.
    case tanh
}

@usableFromInline let geluInverseSqrt2: Float = 0.70710678118654752440
@usableFromInline let geluInverseSqrt2Pi: Float = 0.39894228040143267794   // 1/√(2π)
@usableFromInline let geluSqrt2OverPi: Float = 0.79788456080286535588      // √(2/π)
@usableFromInline let geluCubic: Float = 0.044715

/// GELU forward, y[i] = GELU(x[i]) with the chosen `approximation` (see `GELUApproximation`).
/// The exact form is computed as x·Φ(x) (`normalCDFAndGaussian`, relative error of Φ below
/// 4·10⁻⁶ for |x| < 6) in a loop that vectorises.
public func geluForward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                        count: Int, approximation: GELUApproximation) {
    switch approximation {
    case .erf:
        // x·Φ(x) with Φ from `normalCDFAndGaussian`: vectorises, and keeps the relative
        // accuracy of the negative tail that ½x(1 + erf(x/√2)) loses to cancellation.
        for i in 0..<count {
            let v = x[i]
            y[i] = v * normalCDFAndGaussian(v).cdf
        }
    case .tanh:
        for i in 0..<count {
            let v = x[i]
            let u = geluSqrt2OverPi * (v + geluCubic * v * v * v)
            y[i] = 0.5 * v * (1 + tanhf(u))
        }
    }
}

/// GELU of a biased input, y[r, j] = GELU(x[r, j] + bias[j]) over (rows, cols), in one
/// pass: the bias of the Linear before the activation is added here instead of in its own
/// pass over the (rows, cols) matrix, and x keeps the unbiased values (the backward adds
/// the bias again).
public func geluForward(_ x: UnsafePointer<Float>, bias: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                        rows: Int, cols: Int, approximation: GELUApproximation) {
    for r in 0..<rows {
        let xr = x + r * cols, yr = y + r * cols
        switch approximation {
        case .erf:
            for j in 0..<cols {
                let v = xr[j] + bias[j]
                yr[j] = v * normalCDFAndGaussian(v).cdf
            }
        case .tanh:
            for j in 0..<cols {
                let v = xr[j] + bias[j]
                yr[j] = 0.5 * v * (1 + tanhf(geluSqrt2OverPi * (v + geluCubic * v * v * v)))
            }
        }
    }
}

/// The backward of `geluForward(_:bias:…)`: dx[r, j] = GELU′(x[r, j] + bias[j])·dy[r, j]
/// (overwritten: dx need not be zeroed first).
public func geluBackward(_ x: UnsafePointer<Float>, bias: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                         _ dx: UnsafeMutablePointer<Float>, rows: Int, cols: Int,
                         approximation: GELUApproximation) {
    for r in 0..<rows {
        let xr = x + r * cols, dyr = dy + r * cols, dxr = dx + r * cols
        switch approximation {
        case .erf:
            for j in 0..<cols {
                let v = xr[j] + bias[j]
                let (cdf, gaussian) = normalCDFAndGaussian(v)
                dxr[j] = (cdf + v * geluInverseSqrt2Pi * gaussian) * dyr[j]
            }
        case .tanh:
            for j in 0..<cols {
                let v = xr[j] + bias[j]
                let v2 = v * v
                let t = tanhf(geluSqrt2OverPi * (v + geluCubic * v2 * v))
                let du = geluSqrt2OverPi * (1 + 3 * geluCubic * v2)
                dxr[j] = (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * du) * dyr[j]
            }
        }
    }
}

/// GELU backward, dx[i] += GELU′(x[i])·dy[i], where
///
///     erf:  GELU′(x) = Φ(x) + x·φ(x),  Φ(x) = ½(1 + erf(x/√2)),  φ(x) = e^(−x²/2)/√(2π)
///     tanh: GELU′(x) = ½(1 + t) + ½x(1 − t²)·√(2/π)(1 + 3·0.044715x²),
///           t = tanh(√(2/π)(x + 0.044715x³))
public func geluBackward(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                         _ dx: UnsafeMutablePointer<Float>,
                         count: Int, approximation: GELUApproximation) {
    switch approximation {
    case .erf:
        for i in 0..<count {
            let v = x[i]
            let (cdf, gaussian) = normalCDFAndGaussian(v)
            dx[i] += (cdf + v * geluInverseSqrt2Pi * gaussian) * dy[i]
        }
    case .tanh:
        for i in 0..<count {
            let v = x[i]
            let v2 = v * v
            let t = tanhf(geluSqrt2OverPi * (v + geluCubic * v2 * v))
            let du = geluSqrt2OverPi * (1 + 3 * geluCubic * v2)
            dx[i] += (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * du) * dy[i]
        }
    }
}

/// The sigmoid slope of QuickGELU (OpenAI CLIP's activation).
public let quickGELUSlope: Float = 1.702

/// σ(z) = 1/(1 + e^(−z)) from e = e^(−|z|) ≤ 1, which cannot overflow:
/// σ = 1/(1 + e) for z ≥ 0 and e/(1 + e) otherwise (for z ≪ 0, e = 0 and σ = 0 exactly).
@inline(__always)
func sigmoid(_ z: Float) -> Float {
    let e = branchFreeExp(-abs(z))
    return (z >= 0 ? 1 : e) / (1 + e)
}

/// QuickGELU forward, y = x·σ(1.702x) with σ(z) = 1/(1 + e^(−z)) (OpenAI CLIP text and
/// vision towers).
public func quickGELUForward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                             count: Int) {
    for i in 0..<count {
        let v = x[i]
        y[i] = v * sigmoid(quickGELUSlope * v)
    }
}

/// QuickGELU backward, dx += (σ + 1.702·x·σ·(1 − σ))·dy with σ = σ(1.702x).
public func quickGELUBackward(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                              _ dx: UnsafeMutablePointer<Float>, count: Int) {
    for i in 0..<count {
        let v = x[i]
        let s = sigmoid(quickGELUSlope * v)
        dx[i] += (s + quickGELUSlope * v * s * (1 - s)) * dy[i]
    }
}

/// QuickGELU of a biased input, y[r, j] = QuickGELU(x[r, j] + bias[j]) over (rows, cols);
/// x keeps the unbiased values (see `geluForward(_:bias:…)`).
public func quickGELUForward(_ x: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                             _ y: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
    for r in 0..<rows {
        let xr = x + r * cols, yr = y + r * cols
        for j in 0..<cols {
            let v = xr[j] + bias[j]
            yr[j] = v * sigmoid(quickGELUSlope * v)
        }
    }
}

/// The backward of `quickGELUForward(_:bias:…)`: dx[r, j] = QuickGELU′(x[r, j] + bias[j])·dy[r, j]
/// (overwritten).
public func quickGELUBackward(_ x: UnsafePointer<Float>, bias: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                              _ dx: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
    for r in 0..<rows {
        let xr = x + r * cols, dyr = dy + r * cols, dxr = dx + r * cols
        for j in 0..<cols {
            let v = xr[j] + bias[j]
            let s = sigmoid(quickGELUSlope * v)
            dxr[j] = (s + quickGELUSlope * v * s * (1 - s)) * dyr[j]
        }
    }
}

/// Leaky ReLU forward, y = x for x > 0, slope·x otherwise (PyTorch `nn.LeakyReLU`).
public func leakyReLUForward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                             count: Int, slope: Float) {
    for i in 0..<count {
        let v = x[i]
        y[i] = v > 0 ? v : slope * v
    }
}

/// Leaky ReLU backward, dx += dy for x > 0, slope·dy otherwise (at x = 0 the slope
/// branch is taken, as in PyTorch).
public func leakyReLUBackward(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                              _ dx: UnsafeMutablePointer<Float>, count: Int, slope: Float) {
    for i in 0..<count {
        dx[i] += x[i] > 0 ? dy[i] : slope * dy[i]
    }
}
