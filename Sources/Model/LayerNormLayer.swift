import Kernels

/// LayerNorm over the last dimension, PyTorch `nn.LayerNorm(features, eps)`:
///
///     y[r, :] = (x[r, :] − μ_r) / √(σ²_r + eps) ⊙ γ + β
///
/// Parameters `<name>.weight` (γ, ones) and `<name>.bias` (β, zeros), both `(features,)`.
/// The backward derivation is in docs/model.md.
public final class LayerNormLayer {
    public let name: String
    public let features: Int
    public let eps: Float
    public let weight: Parameter
    public let bias: Parameter

    /// Rows of the input per sample (the owning tower's tokens, or 1 for pooled rows).
    public let rowsPerSample: SampleRows
    private let arena: ActivationArena

    // Saved by forward for backward.
    private var input: UnsafePointer<Float>?
    private var rows = 0
    /// The model's execution state (row workers).
    private let execution: ModelExecution
    private let mean: ActivationBuffer   // (rows,)
    private let rstd: ActivationBuffer   // (rows,)

    public init(_ name: String, features: Int, eps: Float, region: ParameterRegion,
                store: ParameterStore, rowsPerSample: SampleRows = SampleRows()) {
        self.name = name
        self.features = features
        self.eps = eps
        weight = store.declare(name + ".weight", shape: [features], region: region, initializer: .ones)
        bias = store.declare(name + ".bias", shape: [features], region: region, initializer: .zeros)
        self.rowsPerSample = rowsPerSample
        arena = store.activations
        execution = store.execution
        mean = arena.buffer(name + ".mean") { $0.samples * rowsPerSample.count }
        rstd = arena.buffer(name + ".rstd") { $0.samples * rowsPerSample.count }
    }

    /// y (rows, C) ← LayerNorm(x (rows, C)). Caches x: it must stay valid until `backward`.
    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int) {
        arena.reserve(samples: samples(rows: rows, per: rowsPerSample))
        input = x
        self.rows = rows
        let C = features, mean = mean.data, rstd = rstd.data
        concurrentChunks(rows, workers: execution.rowWorkers, minimumPerWorker: 64) { r in
            layerNormForward(x + r.lowerBound * C, gamma: weight.value, beta: bias.value, y + r.lowerBound * C,
                             mean: mean + r.lowerBound, rstd: rstd + r.lowerBound, rows: r.count, cols: C, eps: eps)
        }
    }

    /// dx (rows, C) += ∂L/∂x; dγ, dβ += their gradients when trainable.
    public func backward(_ dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>) {
        guard let x = input else { preconditionFailure("LayerNorm \(name): backward before forward") }
        // Rows are independent unless γ and β train (their gradients sum over the rows, in order).
        let C = features, mean = mean.data, rstd = rstd.data
        let frozen = weight.gradient == nil && bias.gradient == nil
        concurrentChunks(rows, workers: frozen ? execution.rowWorkers : 1, minimumPerWorker: 64) { r in
            layerNormBackward(dy + r.lowerBound * C, x + r.lowerBound * C, gamma: weight.value,
                              mean: mean + r.lowerBound, rstd: rstd + r.lowerBound, dx: dx + r.lowerBound * C,
                              dgamma: weight.gradient, dbeta: bias.gradient, rows: r.count, cols: C)
        }
    }
}
