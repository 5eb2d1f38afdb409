@testable import Formats
@testable import Import
import Kernels
@testable import Model
import XCTest

/// With `execution.parallelWorkers`, attention runs its heads on as many workers as there are BLAS
/// threads and the row-wise kernels split their rows; the outputs and every gradient must be
/// bit-identical to the serial run.
final class AttentionThreadingTests: XCTestCase {
    private func run(threads: Int, causal: Bool) -> [[Float]] {
        let saved = BLASRuntime.threads
        BLASRuntime.setThreads(threads)
        defer { BLASRuntime.setThreads(saved) }
        let store = ParameterStore()
        store.execution.parallelWorkers = true
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

    /// A whole ViT (LoRA, trainable LayerScale) with enough rows that the norms, activations,
    /// residuals and bias additions split over two workers.
    func testRowWorkersGiveBitIdenticalTowerResults() {
        func run(threads: Int) -> [[Float]] {
            let saved = BLASRuntime.threads
            BLASRuntime.setThreads(threads)
            defer { BLASRuntime.setThreads(saved) }
            var config = VisionConfig.tiny
            config.imageSize = 32
            config.patchSize = 4   // 65 tokens: 260 rows at batch 4
            let store = ParameterStore()
            store.execution.parallelWorkers = true
            let vit = VisionTransformer(config: config, training: TowerTraining(lora: LoRAConfig(rank: 2, alpha: 4),
                                                                               targets: .all), store: store)
            store.allocate(seed: 9)
            var rng = RandomGenerator(seed: 10)
            for p in store.trainableParameters { rng.fillGaussian(p.value, count: p.count, std: 0.1) }
            XCTAssertEqual(store.execution.rowWorkers, threads)
            let images = Tensor(shape: [4, 3, 32, 32])
            rng.fillGaussian(images.data, count: images.count)
            let features = Array(UnsafeBufferPointer(start: vit.forward(images: images.data, batch: 4), count: 4 * 32))
            let dFeatures = Tensor(shape: [4 * 32])
            rng.fillGaussian(dFeatures.data, count: dFeatures.count)
            vit.backward(dFeatures: dFeatures.data, dImages: nil)
            return [features, store.gradients.array]
        }
        let serial = run(threads: 1), parallel = run(threads: 2)
        XCTAssertEqual(serial[0], parallel[0], "features")
        XCTAssertEqual(serial[1], parallel[1], "gradients")
        XCTAssertTrue(serial[1].contains { $0 != 0 })
    }
}
