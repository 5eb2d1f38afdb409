@testable import Formats
@testable import Import
import Kernels
@testable import Model
import XCTest

/// With `execution.parallelHeads`, attention runs its heads on as many workers as there are BLAS
/// threads; the outputs and every gradient must be bit-identical to the serial run.
final class AttentionThreadingTests: XCTestCase {
    private func run(threads: Int, causal: Bool) -> [[Float]] {
        let saved = BLASRuntime.threads
        BLASRuntime.setThreads(threads)
        defer { BLASRuntime.setThreads(saved) }
        let store = ParameterStore()
        store.execution.parallelHeads = true
        let attention = MultiHeadAttention("attn", embedDim: 32, heads: 4, layout: .fused, causal: causal,
                                           region: .frozen, lora: LoRAConfig(rank: 2, alpha: 4), store: store)
        store.allocate(seed: 7)
        var rng = RandomGenerator(seed: 8)
        for p in store.trainableParameters { rng.fillGaussian(p.value, count: p.count, std: 0.1) }
        let batch = 3, tokens = 9, n = batch * tokens * 32
        let x = Tensor(shape: [n]), y = Tensor(shape: [n]), dy = Tensor(shape: [n]), dx = Tensor(shape: [n])
        rng.fillGaussian(x.data, count: n)
        rng.fillGaussian(dy.data, count: n)
        attention.forward(x.data, y.data, batch: batch, tokens: tokens)
        attention.backward(dy.data, dx: dx.data)
        return [y.array, dx.array, store.gradients.array]
    }

    func testHeadWorkersGiveBitIdenticalResults() {
        for causal in [false, true] {
            let serial = run(threads: 1, causal: causal), parallel = run(threads: 2, causal: causal)
            XCTAssertEqual(serial[0], parallel[0], "output, causal \(causal)")
            XCTAssertEqual(serial[1], parallel[1], "input gradient, causal \(causal)")
            XCTAssertEqual(serial[2], parallel[2], "LoRA gradients, causal \(causal)")
        }
    }
}
