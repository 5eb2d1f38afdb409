import Kernels

/// The nonlinearity between the two Linears of a transformer MLP.
public enum Activation: String, Codable, Sendable {
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

/// Makes sure `t` holds at least `shape.product` elements, reallocating (zero-filled) only
/// when it is too small. Activations are therefore allocated on the first forward of a
/// batch shape and reused by every later step of that shape (or any smaller one).
@inline(__always)
func ensure(_ t: inout Tensor, _ shape: [Int]) {
    let n = shape.reduce(1, *)
    if t.count < n { t = Tensor(shape: shape) }
}

/// An empty placeholder for activation buffers before the first forward.
@inline(__always)
func emptyTensor() -> Tensor { Tensor(shape: [0]) }

/// Scratch buffers for backward passes, shared by all the layers of a tower.
///
/// Gradients of intermediate activations are only needed while one layer's backward runs,
/// so the blocks of a tower can share them: a tower passes one workspace to all its
/// blocks, which saves about half of the backward memory of a deep model. Each slot is a
/// separate buffer; a layer must not use a slot that its caller holds during the call
/// (the block uses slots 0–2, attention and MLP 3–6).
public final class BackwardWorkspace {
    private var slots: [Tensor] = []

    public init() {}

    /// Slot `index`, holding at least `count` elements (contents unspecified).
    func buffer(_ index: Int, count: Int) -> UnsafeMutablePointer<Float> {
        while slots.count <= index { slots.append(emptyTensor()) }
        ensure(&slots[index], [count])
        return slots[index].data
    }
}
