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
public func ensure(_ t: inout Tensor, _ shape: BufferShape) {
    if t.count < shape.count { t = Tensor(shape: shape.extents) }
}

/// The shape argument of `ensure`, written as an array literal (`[rows, E]`). It keeps up to
/// four extents inline, so that the literal allocates nothing on the step path (an `[Int]`
/// literal is a heap allocation on every call: about 450 per training step before).
public struct BufferShape: ExpressibleByArrayLiteral {
    private var e0 = 1, e1 = 1, e2 = 1, e3 = 1
    private var rank = 0

    @inline(__always)
    public init(arrayLiteral extents: Int...) {
        precondition(extents.count <= 4, "BufferShape: at most 4 extents, got \(extents.count)")
        rank = extents.count
        for (i, n) in extents.enumerated() {
            switch i {
            case 0: e0 = n
            case 1: e1 = n
            case 2: e2 = n
            default: e3 = n
            }
        }
    }

    /// Product of the extents.
    var count: Int { e0 * e1 * e2 * e3 }

    /// The extents as an array (for the tensor that is allocated).
    var extents: [Int] { Array([e0, e1, e2, e3].prefix(rank)) }
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
