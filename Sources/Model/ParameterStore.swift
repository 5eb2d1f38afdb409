import Kernels

/// How a parameter is initialised when the store is allocated.
public enum Initializer: Sendable, Equatable {
    case zeros
    case ones
    case constant(Float)
    /// Normal(0, std²), as `torch.nn.init.normal_` / `trunc_normal_` without truncation.
    case normal(std: Float)
    /// Uniform(−bound, bound).
    case uniform(bound: Float)
    /// PyTorch's default for Linear/Conv weights and PEFT's LoRA A:
    /// `kaiming_uniform_(a: √5)`, i.e. Uniform(±1/√fanIn).
    case kaimingUniform(fanIn: Int)
}

/// Which flat buffer a parameter lives in.
public enum ParameterRegion: Sendable {
    /// Updated by the optimiser; has a gradient in `ParameterStore.gradients`.
    case trainable
    /// Kept fixed (frozen base weights under LoRA, frozen backbones); no gradient.
    case frozen
}

/// A named tensor inside a `ParameterStore`.
///
/// Layers keep `Parameter` handles and read `value` / `gradient` pointers from them
/// after the store has been allocated; the pointers stay valid for the store's lifetime.
public final class Parameter {
    /// Upstream-compatible name (see docs/model-contract.md).
    public let name: String
    public let shape: [Int]
    public let count: Int
    public let region: ParameterRegion
    public let initializer: Initializer
    /// Element offset inside the region's flat buffer (set by `allocate`).
    public internal(set) var offset: Int = -1
    unowned let store: ParameterStore

    init(name: String, shape: [Int], region: ParameterRegion, initializer: Initializer,
         store: ParameterStore) {
        self.name = name
        self.shape = shape
        self.count = shape.reduce(1, *)
        self.region = region
        self.initializer = initializer
        self.store = store
    }

    /// Whether the optimiser updates this parameter.
    public var isTrainable: Bool { region == .trainable }

    /// The parameter's values.
    @inline(__always) public var value: UnsafeMutablePointer<Float> {
        store.valuePointer(region) + offset
    }

    /// The parameter's gradient, or nil for a frozen parameter.
    @inline(__always) public var gradient: UnsafeMutablePointer<Float>? {
        region == .trainable ? store.gradients.data + offset : nil
    }
}

/// All parameters of a model in two flat buffers, llm.c style.
///
/// Trainable parameters live contiguously in `trainable`, their gradients in `gradients`
/// with the same layout, so a data-parallel step reduces the whole gradient with one
/// allreduce and the optimiser runs over one buffer. Frozen weights live in `frozen`.
///
/// Use: layers `declare` their parameters while the model is built, then the owner calls
/// `allocate(seed:)` once; afterwards no parameter can be added.
public final class ParameterStore {
    public private(set) var parameters: [Parameter] = []
    /// How the layers declared here execute: the step's LoRA-dropout stream and
    /// attention's head parallelism.
    public let execution = ModelExecution()
    /// Every activation buffer of the layers declared here, in one allocation.
    public let activations = ActivationArena()
    private var byName: [String: Parameter] = [:]
    public private(set) var trainableCount = 0
    public private(set) var frozenCount = 0
    public private(set) var isAllocated = false

    /// Trainable values, `(trainableCount,)`.
    public private(set) var trainable = Tensor(shape: [0])
    /// Gradients of the trainable values, same layout as `trainable`.
    public private(set) var gradients = Tensor(shape: [0])
    /// Frozen values, `(frozenCount,)`.
    public private(set) var frozen = Tensor(shape: [0])

    public init() { execution.arena = activations }

    /// Declares a parameter. Names must be unique; the store must not be allocated yet.
    @discardableResult
    public func declare(_ name: String, shape: [Int], region: ParameterRegion,
                        initializer: Initializer) -> Parameter {
        precondition(!isAllocated, "ParameterStore: '\(name)' declared after allocation")
        precondition(byName[name] == nil, "ParameterStore: duplicate parameter name '\(name)'")
        let p = Parameter(name: name, shape: shape, region: region, initializer: initializer,
                          store: self)
        parameters.append(p)
        byName[name] = p
        return p
    }

    /// Lays out both regions in declaration order and initialises every parameter from
    /// a generator seeded with `seed`, in declaration order (so the same model built with
    /// the same seed has bit-identical weights on every rank and every run).
    public func allocate(seed: UInt64) {
        precondition(!isAllocated, "ParameterStore.allocate called twice")
        var t = 0, f = 0
        for p in parameters {
            switch p.region {
            case .trainable: p.offset = t; t += p.count
            case .frozen: p.offset = f; f += p.count
            }
        }
        trainableCount = t
        frozenCount = f
        trainable = Tensor(shape: [t])
        gradients = Tensor(shape: [t])
        frozen = Tensor(shape: [f])
        isAllocated = true
        var rng = RandomGenerator(seed: seed)
        for p in parameters { initialize(p, with: &rng) }
    }

    /// Re-draws one parameter's values from its initializer.
    public func initialize(_ p: Parameter, with rng: inout RandomGenerator) {
        let v = p.value
        switch p.initializer {
        case .zeros: v.update(repeating: 0, count: p.count)
        case .ones: v.update(repeating: 1, count: p.count)
        case .constant(let c): v.update(repeating: c, count: p.count)
        case .normal(let std): rng.fillGaussian(v, count: p.count, mean: 0, std: std)
        case .uniform(let b): rng.fillUniform(v, count: p.count, low: -b, high: b)
        case .kaimingUniform(let fanIn):
            let b = 1 / Float(fanIn).squareRoot()
            rng.fillUniform(v, count: p.count, low: -b, high: b)
        }
    }

    /// The parameter called `name`, if declared.
    public func parameter(named name: String) -> Parameter? { byName[name] }

    /// Sets every gradient to zero (start of a step).
    public func zeroGradients() { gradients.zero() }

    /// Trainable parameters in layout order.
    public var trainableParameters: [Parameter] { parameters.filter(\.isTrainable) }

    @inline(__always) func valuePointer(_ region: ParameterRegion) -> UnsafeMutablePointer<Float> {
        region == .trainable ? trainable.data : frozen.data
    }
}

extension ParameterStore {
    /// Whether any trainable parameter's name starts with `prefix` (a tower whose
    /// parameters are all frozen needs no backward pass).
    public func hasTrainableParameters(prefix: String) -> Bool {
        parameters.contains { $0.isTrainable && $0.name.hasPrefix(prefix) }
    }

    /// The name of the first parameter holding a NaN or an infinity, nil when every value
    /// is finite (weights read from a file are checked before they are used).
    public func firstNonFiniteParameter() -> String? {
        parameters.first { p in (0..<p.count).contains { !p.value[$0].isFinite } }?.name
    }
}
