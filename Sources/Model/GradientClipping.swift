import Kernels

/// The global L2 norm ‖g‖ = √(Σ_i g_i²) of a flat gradient, accumulated in Double.
public func gradientNorm(_ gradients: UnsafePointer<Float>, count: Int) -> Double {
    sumOfSquares(gradients, count: count).squareRoot()
}

/// Global-norm gradient clipping, as `torch.nn.utils.clip_grad_norm_(…, max_norm)`:
///
///     n = ‖g‖₂ (over the whole flat gradient),   c = maxNorm / (n + 1e-6),
///     g ← g · min(c, 1)
///
/// Returns n, the norm before clipping (as PyTorch does). A non-finite norm is returned
/// as is and the gradient is scaled by it (becoming NaN), like PyTorch with
/// `error_if_nonfinite=False`; callers that want to skip such steps test the result.
/// Under data parallelism call it after the allreduce, on the full gradient, so every
/// rank computes the same factor.
@discardableResult
public func clipGradientNorm(_ gradients: UnsafeMutablePointer<Float>, count: Int,
                             maxNorm: Float) -> Float {
    precondition(maxNorm > 0, "clipGradientNorm: maxNorm must be positive, got \(maxNorm)")
    let norm = gradientNorm(gradients, count: count)
    let factor = Double(maxNorm) / (norm + 1e-6)
    if !(factor >= 1) { scale(gradients, by: Float(factor), count: count) }
    return Float(norm)
}
