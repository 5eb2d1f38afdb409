import Kernels

/// The transformer feed-forward network `fc2(act(fc1(x)))`, E → H → E
/// (timm `Mlp`, HF `CLIPMLP`; parameters `<name>.fc1.*`, `<name>.fc2.*`).
public final class MLP {
    public let name: String
    public let fc1: Linear
    public let fc2: Linear
    public let activation: Activation
    public var linears: [Linear] { [fc1, fc2] }

    private var rows = 0
    private var preActivation = emptyTensor()   // (rows, H)  fc1 output
    private var hidden = emptyTensor()          // (rows, H)  act(fc1 output)
    /// Backward scratch (slots 3–4): d hidden and d pre-activation, (rows, H) each.
    private let workspace: BackwardWorkspace

    public init(_ name: String, features: Int, hidden: Int, activation: Activation,
                region: ParameterRegion, lora: LoRAConfig?, store: ParameterStore,
                workspace: BackwardWorkspace = BackwardWorkspace()) {
        self.name = name
        self.workspace = workspace
        self.activation = activation
        fc1 = Linear(name + ".fc1", in: features, out: hidden, region: region, lora: lora, store: store)
        fc2 = Linear(name + ".fc2", in: hidden, out: features, region: region, lora: lora, store: store)
    }

    public func forwardFlops(rows: Int) -> Double { fc1.forwardFlops(rows: rows) + fc2.forwardFlops(rows: rows) }

    /// y (rows, E) ← fc2(act(fc1(x (rows, E)))). x must stay valid until `backward`.
    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int) {
        let H = fc1.outFeatures
        self.rows = rows
        ensure(&preActivation, [rows, H])
        ensure(&hidden, [rows, H])
        fc1.forward(x, preActivation.data, rows: rows)
        activation.forward(preActivation.data, hidden.data, count: rows * H)
        fc2.forward(hidden.data, y, rows: rows)
    }

    /// dx (rows, E) += ∂L/∂x given dy (rows, E).
    public func backward(_ dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>) {
        let H = fc1.outFeatures
        let dHidden = workspace.buffer(3, count: rows * H)          // (rows, H)
        let dPreActivation = workspace.buffer(4, count: rows * H)   // (rows, H)
        dHidden.update(repeating: 0, count: rows * H)
        fc2.backward(dy, dx: dHidden)
        dPreActivation.update(repeating: 0, count: rows * H)
        activation.backward(preActivation.data, dHidden, dPreActivation, count: rows * H)
        fc1.backward(dPreActivation, dx: dx)
    }
}
