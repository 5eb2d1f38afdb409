#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Kernels

/// An optimiser over one flat trainable buffer (`ParameterStore.trainable`) and its gradient.
///
/// Steps run in place and allocate nothing; the state buffers are allocated once, at init,
/// with the parameter count. `stateBuffers` and `stepCount` are everything a checkpoint
/// needs to resume bit-exactly.
public protocol Optimizer: AnyObject {
    /// Number of parameters the optimiser was built for.
    var parameterCount: Int { get }
    /// Number of `step` calls so far (PyTorch's `state['step']`).
    var stepCount: Int { get set }
    /// The optimiser's named state, each buffer `(parameterCount,)` (empty for plain SGD).
    var stateBuffers: [(name: String, tensor: Tensor)] { get }
    /// One update θ ← θ − lr·(…) from the gradient g (read only).
    func step(parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>,
              learningRate: Float)
}

extension Optimizer {
    /// One step over a store's trainable buffer with its gradients.
    public func step(_ store: ParameterStore, learningRate: Float) {
        precondition(store.trainableCount == parameterCount,
                     "Optimizer built for \(parameterCount) parameters, store has \(store.trainableCount)")
        step(parameters: store.trainable.data, gradients: store.gradients.data,
             learningRate: learningRate)
    }
}

/// How an Adam optimiser applies weight decay.
public enum AdamWeightDecay: String, Sendable, Equatable, Codable {
    /// Adam (`torch.optim.Adam`): L2 regularisation, g ← g + wd·θ before the moments.
    case l2
    /// AdamW (`torch.optim.AdamW`, Loshchilov & Hutter): θ ← θ − lr·wd·θ, decoupled from the
    /// moments.
    case decoupled
}

/// Adam / AdamW with PyTorch semantics (non-AMSGrad). At step t (1-based), with g the
/// gradient:
///
///     Adam:  g ← g + wd·θ                     AdamW:  θ ← θ·(1 − lr·wd)
///     m ← β₁ m + (1 − β₁) g
///     v ← β₂ v + (1 − β₂) g²
///     θ ← θ − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
///
/// The bias corrections are computed in Double and rounded to Float once per step, as
/// PyTorch does. On the first step m/√v = sign(g), so every parameter with a non-negligible
/// gradient moves by ≈ lr.
public final class Adam: Optimizer {
    public let parameterCount: Int
    public var beta1: Float
    public var beta2: Float
    public var epsilon: Float
    public var weightDecay: Float
    public let decay: AdamWeightDecay
    public var stepCount = 0
    /// m, the first-moment estimate.
    public let firstMoment: Tensor
    /// v, the second-moment estimate.
    public let secondMoment: Tensor

    public init(parameterCount: Int, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8,
                weightDecay: Float = 0, decay: AdamWeightDecay = .l2) {
        precondition(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1,
                     "Adam: betas must be in [0, 1), got (\(beta1), \(beta2))")
        self.parameterCount = parameterCount
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.decay = decay
        firstMoment = Tensor(shape: [parameterCount])
        secondMoment = Tensor(shape: [parameterCount])
    }

    public var stateBuffers: [(name: String, tensor: Tensor)] {
        [("exp_avg", firstMoment), ("exp_avg_sq", secondMoment)]
    }

    public func step(parameters theta: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>,
                     learningRate lr: Float) {
        stepCount += 1
        let t = Double(stepCount)
        let stepSize = Float(Double(lr) / (1 - pow(Double(beta1), t)))
        let correction2Root = Float((1 - pow(Double(beta2), t)).squareRoot())
        let b1 = beta1, b2 = beta2, eps = epsilon
        let oneMinusB1 = 1 - b1, oneMinusB2 = 1 - b2
        let l2 = decay == .l2 ? weightDecay : 0
        let shrink = decay == .decoupled ? 1 - lr * weightDecay : 1
        let m = firstMoment.data, v = secondMoment.data
        for i in 0..<parameterCount {
            var p = theta[i]
            let g = gradients[i] + l2 * p
            p *= shrink
            let mi = b1 * m[i] + oneMinusB1 * g
            let vi = b2 * v[i] + oneMinusB2 * g * g
            m[i] = mi
            v[i] = vi
            theta[i] = p - stepSize * mi / (vi.squareRoot() / correction2Root + eps)
        }
    }
}

/// Stochastic gradient descent with momentum, PyTorch semantics (`torch.optim.SGD`):
///
///     g ← g + wd·θ
///     b ← g                               (first step)
///     b ← μ b + (1 − dampening) g         (later steps)
///     d = g + μ b  (Nesterov)   or   d = b
///     θ ← θ − lr·d
///
/// With μ = 0 it is plain SGD and keeps no state.
public final class SGD: Optimizer {
    public let parameterCount: Int
    public var momentum: Float
    public var dampening: Float
    public var weightDecay: Float
    public let nesterov: Bool
    public var stepCount = 0
    /// b, the momentum buffer (empty when μ = 0).
    public let momentumBuffer: Tensor

    public init(parameterCount: Int, momentum: Float = 0, dampening: Float = 0,
                weightDecay: Float = 0, nesterov: Bool = false) {
        precondition(!nesterov || (momentum > 0 && dampening == 0),
                     "SGD: Nesterov momentum requires momentum > 0 and zero dampening")
        self.parameterCount = parameterCount
        self.momentum = momentum
        self.dampening = dampening
        self.weightDecay = weightDecay
        self.nesterov = nesterov
        momentumBuffer = Tensor(shape: [momentum != 0 ? parameterCount : 0])
    }

    public var stateBuffers: [(name: String, tensor: Tensor)] {
        momentum != 0 ? [("momentum_buffer", momentumBuffer)] : []
    }

    public func step(parameters theta: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>,
                     learningRate lr: Float) {
        let first = stepCount == 0
        stepCount += 1
        let wd = weightDecay, mu = momentum, keep = 1 - dampening
        if mu == 0 {
            for i in 0..<parameterCount { theta[i] -= lr * (gradients[i] + wd * theta[i]) }
            return
        }
        let b = momentumBuffer.data
        for i in 0..<parameterCount {
            let g = gradients[i] + wd * theta[i]
            let bi = first ? g : mu * b[i] + keep * g
            b[i] = bi
            theta[i] -= lr * (nesterov ? g + mu * bi : bi)
        }
    }
}
