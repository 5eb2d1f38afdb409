@testable import Formats
@testable import Import
import Kernels
@testable import Model
import Numerics
import XCTest

/// Optimiser steps, clipping and schedules against values computed by hand.
final class OptimizerTests: XCTestCase {

    /// Runs `steps` optimiser steps on a copy of `theta`, with gradient `grads[k]` at step k.
    private func run(_ optimizer: Optimizer, theta: [Float], grads: [[Float]], lr: Float) -> [Float] {
        var p = theta
        for g in grads {
            p.withUnsafeMutableBufferPointer { pp in
                g.withUnsafeBufferPointer { gp in
                    optimizer.step(parameters: pp.baseAddress!, gradients: gp.baseAddress!,
                                   learningRate: lr)
                }
            }
        }
        return p
    }

    private func assertClose(_ a: [Float], _ b: [Double], rtol: Double = 1e-6, atol: Double = 1e-9,
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, file: file, line: line)
        for i in a.indices where !Double(a[i]).isApproximatelyEqual(
            to: b[i], absoluteTolerance: atol, relativeTolerance: rtol) {
            XCTFail("[\(i)] \(a[i]) vs expected \(b[i])", file: file, line: line)
        }
    }

    func testAdamFirstStepMovesEachParameterByLearningRateTimesSign() {
        let theta: [Float] = [0.5, -0.25, 1, 2, -3]
        let g: [Float] = [1e-2, -3, 5e-4, -7e-3, 40]
        let adam = Adam(parameterCount: theta.count)
        let lr: Float = 1e-3
        let p = run(adam, theta: theta, grads: [g], lr: lr)
        // m̂ = g, v̂ = g²: Δθ = −lr·g/(|g| + ε) ≈ −lr·sign(g).
        let expected = theta.indices.map { i -> Double in
            Double(theta[i]) - Double(lr) * Double(g[i]) / (Double(abs(g[i])) + 1e-8)
        }
        assertClose(p, expected)
        for i in theta.indices {
            XCTAssertEqual(Double(theta[i] - p[i]), Double(lr) * (g[i] > 0 ? 1 : -1), accuracy: 1e-7)
        }
        XCTAssertEqual(adam.stepCount, 1)
    }

    func testAdamTwoStepsWithL2WeightDecayMatchHandComputation() {
        let theta: [Float] = [0.5, -1.5, 2]
        let grads: [[Float]] = [[0.1, -0.2, 0.3], [-0.4, 0.05, 0.3]]
        let lr = 1e-2, wd = 1e-1, b1 = 0.9, b2 = 0.999, eps = 1e-8
        let adam = Adam(parameterCount: 3, weightDecay: Float(wd))
        let p = run(adam, theta: theta, grads: grads, lr: Float(lr))
        var expected = theta.map(Double.init)
        var m = [Double](repeating: 0, count: 3), v = m
        for (k, g) in grads.enumerated() {
            let t = Double(k + 1)
            for i in 0..<3 {
                let gi = Double(g[i]) + wd * expected[i]
                m[i] = b1 * m[i] + (1 - b1) * gi
                v[i] = b2 * v[i] + (1 - b2) * gi * gi
                let mh = m[i] / (1 - pow(b1, t)), vh = v[i] / (1 - pow(b2, t))
                expected[i] -= lr * mh / (vh.squareRoot() + eps)
            }
        }
        assertClose(p, expected, rtol: 1e-5)
        assertClose(adam.firstMoment.array, m, rtol: 1e-5)
        // 1 − β₂ rounds to Float with a relative error of 1.3e-5, as in PyTorch.
        assertClose(adam.secondMoment.array, v, rtol: 5e-5)
        XCTAssertEqual(adam.stateBuffers.map(\.name), ["exp_avg", "exp_avg_sq"])
    }

    func testAdamWDecaysParametersDecoupledFromTheGradient() {
        let theta: [Float] = [1, -2, 4]
        let lr: Float = 0.1, wd: Float = 0.5
        // Zero gradient: the moments stay 0, so only the decay θ ← θ(1 − lr·wd) acts.
        let adamW = Adam(parameterCount: 3, weightDecay: wd, decay: .decoupled)
        let p = run(adamW, theta: theta, grads: [[0, 0, 0], [0, 0, 0]], lr: lr)
        assertClose(p, theta.map { Double($0) * 0.95 * 0.95 })
        // With a gradient: decay, then the usual first Adam step of ≈ lr·sign(g).
        let adamW2 = Adam(parameterCount: 3, weightDecay: wd, decay: .decoupled)
        let g: [Float] = [0.3, -0.3, 1]
        let q = run(adamW2, theta: theta, grads: [g], lr: lr)
        assertClose(q, theta.indices.map { Double(theta[$0]) * 0.95 - 0.1 * (g[$0] > 0 ? 1 : -1) },
                    rtol: 1e-6)
        // Adam's L2 decay instead enters the moments: a zero gradient still moves θ by lr.
        let adam = Adam(parameterCount: 3, weightDecay: wd)
        let r = run(adam, theta: theta, grads: [[0, 0, 0]], lr: lr)
        assertClose(r, theta.map { Double($0) - 0.1 * ($0 > 0 ? 1 : -1) }, rtol: 1e-6)
    }

    func testSGDNesterovTwoStepsByHand() {
        // μ = 0.9, lr = 0.1, θ₀ = 1.
        // step 1, g = 0.5:  b = 0.5, d = 0.5 + 0.9·0.5 = 0.95, θ = 1 − 0.095 = 0.905
        // step 2, g = −0.2: b = 0.9·0.5 − 0.2 = 0.25, d = −0.2 + 0.9·0.25 = 0.025,
        //                   θ = 0.905 − 0.0025 = 0.9025
        let sgd = SGD(parameterCount: 1, momentum: 0.9, nesterov: true)
        let p = run(sgd, theta: [1], grads: [[0.5], [-0.2]], lr: 0.1)
        assertClose(p, [0.9025])
        assertClose(sgd.momentumBuffer.array, [0.25])
        XCTAssertEqual(sgd.stepCount, 2)
    }

    func testSGDMomentumDampeningAndWeightDecayByHand() {
        // μ = 0.5, dampening 0.1, wd = 0.1, lr = 0.2, θ₀ = 2.
        // step 1, g = 1:  g' = 1 + 0.2 = 1.2, b = 1.2 (no dampening on the first step),
        //                 θ = 2 − 0.24 = 1.76
        // step 2, g = 1:  g' = 1 + 0.176 = 1.176, b = 0.6 + 0.9·1.176 = 1.6584,
        //                 θ = 1.76 − 0.33168 = 1.42832
        let sgd = SGD(parameterCount: 1, momentum: 0.5, dampening: 0.1, weightDecay: 0.1)
        assertClose(run(sgd, theta: [2], grads: [[1], [1]], lr: 0.2), [1.42832], rtol: 1e-6)
        // Plain SGD keeps no state.
        let plain = SGD(parameterCount: 2)
        XCTAssertTrue(plain.stateBuffers.isEmpty)
        assertClose(run(plain, theta: [1, 2], grads: [[1, -1]], lr: 0.5), [0.5, 2.5])
    }

    func testClipGradientNormScalesToMaxNorm() {
        var g: [Float] = [3, 4, 0]
        let norm = g.withUnsafeMutableBufferPointer {
            clipGradientNorm($0.baseAddress!, count: 3, maxNorm: 0.5)
        }
        XCTAssertEqual(norm, 5, accuracy: 1e-6)
        let factor = 0.5 / (5 + 1e-6)
        assertClose(g, [3 * factor, 4 * factor, 0])
        // A gradient inside the ball is untouched (factor clamped to 1).
        var h: [Float] = [0.1, -0.2]
        let hn = h.withUnsafeMutableBufferPointer {
            clipGradientNorm($0.baseAddress!, count: 2, maxNorm: 0.5)
        }
        XCTAssertEqual(Double(hn), (0.05).squareRoot(), accuracy: 1e-7)
        XCTAssertEqual(h, [0.1, -0.2])
    }

    func testSchedulesAtKnownPoints() {
        XCTAssertEqual(LearningRateSchedule.constant(3e-4).learningRate(atStep: 1000), 3e-4)
        let cosine = LearningRateSchedule.cosine(base: 1e-3, minimum: 1e-4, steps: 100)
        XCTAssertEqual(cosine.learningRate(atStep: 0), 1e-3, accuracy: 1e-9)
        XCTAssertEqual(cosine.learningRate(atStep: 50), 5.5e-4, accuracy: 1e-9)
        XCTAssertEqual(cosine.learningRate(atStep: 25),
                       Float(1e-4 + 9e-4 * (1 + cos(Double.pi / 4)) / 2), accuracy: 1e-9)
        XCTAssertEqual(cosine.learningRate(atStep: 100), 1e-4, accuracy: 1e-9)
        XCTAssertEqual(cosine.learningRate(atStep: 150), 1e-4, accuracy: 1e-9)
        let warm = LearningRateSchedule.warmupCosine(base: 1e-3, minimum: 0, warmupSteps: 10,
                                                     totalSteps: 110)
        XCTAssertEqual(warm.learningRate(atStep: 0), 1e-4, accuracy: 1e-9)
        XCTAssertEqual(warm.learningRate(atStep: 4), 5e-4, accuracy: 1e-9)
        XCTAssertEqual(warm.learningRate(atStep: 9), 1e-3, accuracy: 1e-9)
        XCTAssertEqual(warm.learningRate(atStep: 10), 1e-3, accuracy: 1e-9)
        XCTAssertEqual(warm.learningRate(atStep: 60), 5e-4, accuracy: 1e-9)
        XCTAssertEqual(warm.learningRate(atStep: 110), 0, accuracy: 1e-9)
    }

    func testStepOverAStoreUsesItsFlatBuffers() {
        let store = ParameterStore()
        let w = store.declare("w", shape: [2], region: .trainable, initializer: .constant(1))
        store.declare("frozen", shape: [3], region: .frozen, initializer: .ones)
        store.allocate(seed: 0)
        w.gradient![0] = 2
        w.gradient![1] = -2
        let sgd = SGD(parameterCount: store.trainableCount)
        sgd.step(store, learningRate: 0.25)
        XCTAssertEqual(store.trainable.array, [0.5, 1.5])
        XCTAssertEqual(store.frozen.array, [1, 1, 1])
    }
}
