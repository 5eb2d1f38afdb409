import Kernels


/// The transformer feed-forward network `fc2(act(fc1(x)))`, E → H → E
/// (timm `Mlp`, HF `CLIPMLP`; parameters `<name>.fc1.*`, `<name>.fc2.*`).
public final class MLP {
    public let name: String
    public let fc1: Linear
    public let fc2: Linear
    public let activation: Activation
    public var linears: [Linear] { [fc1, fc2] }

    /// Rows of the input per sample (the owning tower's tokens).
    public let rowsPerSample: SampleRows
    private let arena: ActivationArena
    /// The model's execution state (row workers).
    private let execution: ModelExecution
    private var rows = 0
    private let preActivation: ActivationBuffer   // (rows, H)  fc1 output, before its bias
    private let hidden: ActivationBuffer          // (rows, H)  act(fc1 output)
    /// Backward scratch shared with the other blocks of the tower.
    private let scratch: MLPScratch

    public init(_ name: String, features: Int, hidden: Int, activation: Activation,
                region: ParameterRegion, lora: LoRAConfig?, store: ParameterStore,
                rowsPerSample: SampleRows = SampleRows(), scratch: MLPScratch? = nil) {
        self.name = name
        self.activation = activation
        self.rowsPerSample = rowsPerSample
        arena = store.activations
        execution = store.execution
        fc1 = Linear(name + ".fc1", in: features, out: hidden, region: region, lora: lora, store: store,
                     rowsPerSample: rowsPerSample)
        fc2 = Linear(name + ".fc2", in: hidden, out: features, region: region, lora: lora, store: store,
                     rowsPerSample: rowsPerSample)
        preActivation = arena.buffer(name + ".pre_activation") { $0.samples * rowsPerSample.count * hidden }
        self.hidden = arena.buffer(name + ".hidden") { $0.samples * rowsPerSample.count * hidden }
        self.scratch = scratch ?? MLPScratch(name + ".scratch", hidden: hidden, rowsPerSample: rowsPerSample,
                                             arena: arena)
    }

    public func forwardFlops(rows: Int) -> Double { fc1.forwardFlops(rows: rows) + fc2.forwardFlops(rows: rows) }

    /// y (rows, E) ← fc2(act(fc1(x (rows, E)))). x must stay valid until `backward`.
    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int) {
        let H = fc1.outFeatures
        self.rows = rows
        arena.reserve(samples: samples(rows: rows, per: rowsPerSample))
        // fc1's bias joins the activation's pass over the (rows, H) matrix.
        fc1.forward(x, preActivation.data, rows: rows, addingBias: false)
        let pre = preActivation.data, hidden = hidden.data, bias = fc1.bias?.value
        concurrentChunks(rows, workers: execution.rowWorkers, minimumPerWorker: 16) { r in
            let offset = r.lowerBound * H
            if let bias {
                activation.forward(pre + offset, bias: bias, hidden + offset, rows: r.count, cols: H)
            } else {
                activation.forward(pre + offset, hidden + offset, count: r.count * H)
            }
        }
        fc2.forward(hidden, y, rows: rows)
    }

    /// dx (rows, E) += ∂L/∂x given dy (rows, E); `accumulate: false` overwrites dx.
    public func backward(_ dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, accumulate: Bool = true) {
        let H = fc1.outFeatures
        let dHidden = scratch.dHidden.data                  // (rows, H)
        let dPreActivation = scratch.dPreActivation.data    // (rows, H)
        let workers = execution.rowWorkers
        fc2.backward(dy, dx: dHidden, accumulate: false)
        let pre = preActivation.data, bias = fc1.bias?.value
        concurrentChunks(rows, workers: workers, minimumPerWorker: 16) { r in
            let offset = r.lowerBound * H
            if let bias {   // overwrites dPreActivation
                activation.backward(pre + offset, bias: bias, dHidden + offset, dPreActivation + offset,
                                    rows: r.count, cols: H)
            } else {
                (dPreActivation + offset).update(repeating: 0, count: r.count * H)
                activation.backward(pre + offset, dHidden + offset, dPreActivation + offset, count: r.count * H)
            }
        }
        fc1.backward(dPreActivation, dx: dx, accumulate: accumulate)
    }
}

/// The MLP's backward scratch, one per tower (its blocks run their backward one at a time).
public final class MLPScratch {
    let dHidden: ActivationBuffer          // (rows, H)
    let dPreActivation: ActivationBuffer   // (rows, H)

    public init(_ name: String, hidden: Int, rowsPerSample: SampleRows, arena: ActivationArena) {
        dHidden = arena.buffer(name + ".d_hidden") { $0.samples * rowsPerSample.count * hidden }
        dPreActivation = arena.buffer(name + ".d_pre_activation") { $0.samples * rowsPerSample.count * hidden }
    }
}
