import Kernels

/// The nonlinearity between the two Linears of a transformer MLP.
public enum Activation: String, NamedChoice {
    /// Exact GELU, ½x(1 + erf(x/√2)) — timm ViTs, `nn.GELU()`.
    case gelu
    /// Tanh-approximated GELU — `nn.GELU(approximate="tanh")`.
    case geluTanh
    /// x·σ(1.702x) — OpenAI CLIP towers.
    case quickGELU

    /// y = f(x) over `count` elements (y may equal x).
    func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        switch self {
        case .gelu: geluForward(x, y, count: count, approximation: .erf)
        case .geluTanh: geluForward(x, y, count: count, approximation: .tanh)
        case .quickGELU: quickGELUForward(x, y, count: count)
        }
    }

    /// y[r, j] = f(x[r, j] + bias[j]) over (rows, cols); x is left unbiased.
    func forward(_ x: UnsafePointer<Float>, bias: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                 rows: Int, cols: Int) {
        switch self {
        case .gelu: geluForward(x, bias: bias, y, rows: rows, cols: cols, approximation: .erf)
        case .geluTanh: geluForward(x, bias: bias, y, rows: rows, cols: cols, approximation: .tanh)
        case .quickGELU: quickGELUForward(x, bias: bias, y, rows: rows, cols: cols)
        }
    }

    /// dx[r, j] = f′(x[r, j] + bias[j])·dy[r, j] over (rows, cols) (overwritten).
    func backward(_ x: UnsafePointer<Float>, bias: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                  _ dx: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        switch self {
        case .gelu: geluBackward(x, bias: bias, dy, dx, rows: rows, cols: cols, approximation: .erf)
        case .geluTanh: geluBackward(x, bias: bias, dy, dx, rows: rows, cols: cols, approximation: .tanh)
        case .quickGELU: quickGELUBackward(x, bias: bias, dy, dx, rows: rows, cols: cols)
        }
    }

    /// dx += f′(x) ⊙ dy over `count` elements.
    func backward(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                  _ dx: UnsafeMutablePointer<Float>, count: Int) {
        switch self {
        case .gelu: geluBackward(x, dy, dx, count: count, approximation: .erf)
        case .geluTanh: geluBackward(x, dy, dx, count: count, approximation: .tanh)
        case .quickGELU: quickGELUBackward(x, dy, dx, count: count)
        }
    }
}
