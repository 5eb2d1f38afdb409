import Kernels
@testable import Model
import XCTest

/// Attention with recomputed probabilities (two statistics per row kept, S = QKᵀ/√d and P
/// rebuilt in the backward) must give the stored-probabilities results bit for bit, with
/// less activation memory and one more product per head.
final class AttentionProbabilitiesTests: XCTestCase {
    private func run(_ mode: AttentionProbabilities, causal: Bool, padding: [Int]?, threads: Int) -> [[Float]] {
        let saved = BLASRuntime.threads
        BLASRuntime.setThreads(threads)
        defer { BLASRuntime.setThreads(saved) }
        let store = ParameterStore()
        store.execution.parallelWorkers = true
        store.execution.attentionProbabilities = mode
        let attention = MultiHeadAttention("attn", embedDim: 32, heads: 4, layout: .separate, causal: causal,
                                           region: .frozen, lora: LoRAConfig(rank: 2, alpha: 4), store: store)
        store.allocate(seed: 17)
        var rng = RandomGenerator(seed: 18)
        for p in store.trainableParameters { rng.fillGaussian(p.value, count: p.count, std: 0.1) }
        let batch = 3, tokens = 11, n = batch * tokens * 32
        let x = Tensor(shape: [n]), y = Tensor(shape: [n]), dy = Tensor(shape: [n]), dx = Tensor(shape: [n])
        rng.fillGaussian(x.data, count: n, std: 2)
        rng.fillGaussian(dy.data, count: n)
        attention.setKeyPadding(validLengths: padding, tokens: tokens)
        attention.forward(x.data, y.data, batch: batch, tokens: tokens)
        attention.backward(dy.data, dx: dx.data)
        return [y.array, dx.array, store.gradients.array]
    }

    func testRecomputedProbabilitiesGiveTheStoredResultsBitForBit() {
        // Padding [0, …]: a sequence whose keys are all masked (all-zero probability rows).
        for (causal, padding) in [(false, nil), (true, nil), (false, [0, 7, 11]), (true, [4, 11, 1])] as [(Bool, [Int]?)] {
            for threads in [1, 2] {
                let stored = run(.stored, causal: causal, padding: padding, threads: threads)
                let recomputed = run(.recomputed, causal: causal, padding: padding, threads: threads)
                let what = "causal \(causal), padding \(String(describing: padding)), \(threads) threads"
                XCTAssertEqual(stored[0], recomputed[0], "output, \(what)")
                XCTAssertEqual(stored[1], recomputed[1], "input gradient, \(what)")
                XCTAssertEqual(stored[2], recomputed[2], "LoRA gradients, \(what)")
                XCTAssertTrue(stored[2].contains { $0 != 0 }, what)
            }
        }
    }

    /// A ViT-S/16-sized tower at batch 2: the recomputed mode plans B·H·T·(T − 3) floats
    /// fewer per block (the (T, T) matrices out, one probability row and two statistics per
    /// row in), executes one more T×T×d product per head in the backward, as counted by
    /// `trainingFlops`, and changing the mode re-plans the arena.
    func testRecomputedModeSavesTheMatricesAndCountsTheExtraProduct() {
        var config = VisionConfig.vitS16
        config.depth = 2
        let store = ParameterStore()
        let vit = VisionTransformer(config: config, training: TowerTraining(lora: LoRAConfig(rank: 4, alpha: 8), targets: .all),
                                    store: store)
        store.allocate(seed: 3)
        let images = Tensor(shape: [2, 3, 224, 224])
        var rng = RandomGenerator(seed: 4)
        rng.fillGaussian(images.data, count: images.count)
        let dFeatures = Tensor(shape: [2 * vit.outputDim])
        rng.fillGaussian(dFeatures.data, count: dFeatures.count)
        func step() -> (flops: Double, floats: Int, features: [Float], gradients: [Float]) {
            store.zeroGradients()
            GEMMStatistics.reset()
            GEMMStatistics.isEnabled = true
            let features = Array(UnsafeBufferPointer(start: vit.forward(images: images.data, batch: 2), count: 2 * vit.outputDim))
            vit.backward(dFeatures: dFeatures.data, dImages: nil)
            GEMMStatistics.isEnabled = false
            return (GEMMStatistics.flops, store.activations.floatCount, features, store.gradients.array)
        }
        let stored = step()
        XCTAssertEqual(stored.flops, vit.trainingFlops(batch: 2).total)
        store.execution.attentionProbabilities = .recomputed
        let recomputed = step()
        XCTAssertEqual(recomputed.flops, vit.trainingFlops(batch: 2).total)
        let T = config.tokens, H = config.heads
        // The last block keeps every row's statistics but its one query row needs no recomputation.
        XCTAssertEqual(recomputed.flops - stored.flops, Double(2 * H) * gemmFlops(m: T, n: T, k: 64) * Double(config.depth - 1))
        let saved = 2 * H * T * (T - 1) - 2 * H * T * 2   // per block: (T, T) → (1, T) plus (T, 2)
        XCTAssertEqual(stored.floats - recomputed.floats, config.depth * saved, accuracy: 16 * 4 * config.depth)
        XCTAssertEqual(stored.features, recomputed.features)
        XCTAssertEqual(stored.gradients, recomputed.gradients)
    }
}
