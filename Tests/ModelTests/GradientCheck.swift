import Formats
import Import
import Kernels
import Model
import XCTest

/// Finite-difference gradient checks for layers with hand-written backward passes.
///
/// Usage: run forward + backward once to get the analytic gradient of a scalar loss with
/// respect to some Float buffer, copy it out, then call `GradientCheck.check` with that
/// buffer, the copied gradient and a closure that recomputes the loss (forward only) in
/// Double. Each checked element x is perturbed to x ± h and the central difference
///
///     g_fd = (L(x + h) − L(x − h)) / 2h
///
/// is compared with the analytic g by |g − g_fd| ≤ tol · max(|g|, |g_fd|, floor). The
/// default floor is the larger of 2% of the tensor's largest analytic gradient and an
/// estimate of the round-off noise of the difference quotient, 1000·ε_Float·max(|L|, 1)/h:
/// entries that are tiny compared with the rest (or exactly zero, like a key-projection
/// bias under softmax) are held to an absolute tolerance at that scale, since Float32
/// round-off in the loss makes their relative error meaningless.
/// The element is restored afterwards. Large tensors are checked on a random subset of at
/// most `maxElements` elements (the largest-gradient element is always included, so a
/// gradient that is wrong by a constant factor cannot hide among near-zero entries).
enum GradientCheck {
    struct Result {
        var checked = 0
        var failures = 0
        var worstRelativeError = 0.0
    }

    /// Checks `count` elements at `values` against `analytic`; reports failures with XCTFail.
    @discardableResult
    static func check(_ name: String, values: UnsafeMutablePointer<Float>, analytic: [Float],
                      count: Int, maxElements: Int = 48, step h: Float = 1e-2,
                      relativeTolerance: Double = 2e-2, floor: Double? = nil, seed: UInt64 = 7,
                      loss: () -> Double, reportFailures: Bool = true,
                      file: StaticString = #filePath, line: UInt = #line) -> Result {
        precondition(analytic.count == count, "GradientCheck \(name): \(analytic.count) gradients for \(count) values")
        var indices = Array(0..<count)
        if count > maxElements {
            var rng = RandomGenerator(seed: seed)
            for i in stride(from: count - 1, to: 0, by: -1) {   // Fisher–Yates
                indices.swapAt(i, rng.nextInt(upperBound: i + 1))
            }
            indices = Array(indices.prefix(maxElements - 1))
            let largest = analytic.indices.max { abs(analytic[$0]) < abs(analytic[$1]) }!
            if !indices.contains(largest) { indices.append(largest) }
        }
        let largestMagnitude = analytic.reduce(0) { max($0, abs(Double($1))) }
        let noise = 1000 * Double(Float.ulpOfOne) * max(abs(loss()), 1) / Double(h)
        let floor = floor ?? max(0.02 * largestMagnitude, noise)
        var result = Result()
        var messages: [String] = []
        for i in indices {
            let original = values[i]
            values[i] = original + h
            let plus = loss()
            values[i] = original - h
            let minus = loss()
            values[i] = original
            // Divide by the step actually taken (x ± h rounds in Float).
            let actualStep = Double(original + h) - Double(original - h)
            let numeric = (plus - minus) / actualStep
            let a = Double(analytic[i])
            let scale = max(abs(a), abs(numeric), floor)
            let error = abs(a - numeric) / scale
            result.checked += 1
            result.worstRelativeError = max(result.worstRelativeError, error)
            if error > relativeTolerance || !error.isFinite {
                result.failures += 1
                if messages.count < 5 { messages.append("[\(i)] analytic \(a) numeric \(numeric)") }
            }
        }
        if result.failures > 0 && reportFailures {
            XCTFail("\(name): \(result.failures)/\(result.checked) gradient elements off by more than "
                    + "\(relativeTolerance) relative (worst \(result.worstRelativeError)): "
                    + messages.joined(separator: "; "), file: file, line: line)
        }
        return result
    }

    /// A fixed random projection vector w, so that loss = Σ w ⊙ output has dL/doutput = w.
    static func weights(count: Int, seed: UInt64 = 99) -> [Float] {
        var rng = RandomGenerator(seed: seed)
        return (0..<count).map { _ in rng.nextFloat() * 2 - 1 }
    }

    /// Σ w[i]·y[i] accumulated in Double.
    static func project(_ y: UnsafePointer<Float>, _ w: [Float]) -> Double {
        var s = 0.0
        for i in w.indices { s += Double(w[i]) * Double(y[i]) }
        return s
    }
}

/// `count` values drawn uniformly from [−scale, scale) by `RandomGenerator(seed:)`.
func uniformValues(_ count: Int, seed: UInt64, scale: Float = 1) -> [Float] {
    var rng = RandomGenerator(seed: seed)
    var out = [Float](repeating: 0, count: count)
    out.withUnsafeMutableBufferPointer { rng.fillUniform($0.baseAddress!, count: count, low: -scale, high: scale) }
    return out
}
