#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A learning rate as a function of the number of optimiser steps already taken (t = 0
/// for the first step), computed in Double in closed form so that a resumed run gets the
/// same value as an uninterrupted one.
public enum LearningRateSchedule: Sendable, Equatable, Codable {
    /// lr_t = base.
    case constant(Float)
    /// Cosine annealing from `base` to `minimum` over `steps` steps, the closed form of
    /// `torch.optim.lr_scheduler.CosineAnnealingLR(T_max: steps, eta_min: minimum)`:
    ///
    ///     lr_t = min + (base − min)·(1 + cos(π·t/T))/2,   0 ≤ t ≤ T
    ///
    /// and lr_t = min for t > T (PyTorch would continue the cosine back up; we hold the floor).
    case cosine(base: Float, minimum: Float, steps: Int)
    /// Linear warm-up then cosine annealing:
    ///
    ///     lr_t = base·(t + 1)/W                                          t < W
    ///     lr_t = min + (base − min)·(1 + cos(π·(t − W)/(T − W)))/2      W ≤ t ≤ T
    ///     lr_t = min                                                     t > T
    ///
    /// so the first step already uses base/W (no wasted step at lr 0) and step W uses base.
    case warmupCosine(base: Float, minimum: Float, warmupSteps: Int, totalSteps: Int)

    /// The learning rate for the step taken after `step` completed steps.
    public func learningRate(atStep step: Int) -> Float {
        precondition(step >= 0, "LearningRateSchedule: negative step \(step)")
        switch self {
        case .constant(let lr):
            return lr
        case .cosine(let base, let minimum, let steps):
            return cosineValue(base: base, minimum: minimum, t: step, length: steps)
        case .warmupCosine(let base, let minimum, let warmup, let total):
            if step < warmup { return Float(Double(base) * Double(step + 1) / Double(warmup)) }
            return cosineValue(base: base, minimum: minimum, t: step - warmup,
                               length: total - warmup)
        }
    }

    private func cosineValue(base: Float, minimum: Float, t: Int, length: Int) -> Float {
        if length <= 0 || t >= length { return t >= length && length > 0 ? minimum : base }
        let b = Double(base), m = Double(minimum)
        return Float(m + (b - m) * (1 + cos(Double.pi * Double(t) / Double(length))) / 2)
    }
}
