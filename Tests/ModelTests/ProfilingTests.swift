@testable import Formats
@testable import Import
import Kernels
@testable import Model
import XCTest

/// The analytic step FLOPs (`trainingFlops`) equal what `gemm` actually executes, counted
/// by `GEMMStatistics`, for the method, its ablations and the unimodal baselines.
final class ProfilingTests: XCTestCase {
    static let batch = 3
    static let lora = LoRAConfig(rank: 2, alpha: 4)

    /// Images (B, 3, 16, 16), labels and token ids with an end-of-text token per row.
    private struct Inputs {
        var images = Tensor(shape: [ProfilingTests.batch, 3, 16, 16])
        var labels: [Int32] = [2, 0, 1]
        var tokens: [Int32]

        init() {
            let text = TextConfig.tiny, b = ProfilingTests.batch
            var rng = RandomGenerator(seed: 3)
            rng.fillGaussian(images.data, count: images.count)
            tokens = (0..<(b * text.contextLength)).map { _ in Int32(1 + rng.nextInt(upperBound: 60)) }
            for r in 0..<b { tokens[r * text.contextLength + 5 + 4 * r] = text.endOfTextId }
        }
    }

    /// Runs `body` with GEMM accounting on and returns the FLOPs it executed.
    private func executedFlops(_ body: () -> Void) -> Double {
        GEMMStatistics.reset()
        GEMMStatistics.isEnabled = true
        body()
        GEMMStatistics.isEnabled = false
        return GEMMStatistics.flops
    }

    private func checkCLIPIT(_ config: CLIPITConfig, file: StaticString = #filePath, line: UInt = #line) {
        let model = CLIPITModel(config, seed: 1)
        let x = Inputs(), b = Self.batch
        let expected = model.trainingFlops(batch: b)
        x.labels.withUnsafeBufferPointer { labels in x.tokens.withUnsafeBufferPointer { tokens in
            let forward = executedFlops {
                _ = model.loss(images: x.images.data, labels: labels.baseAddress!,
                               tokens: tokens.baseAddress!, batch: b)
            }
            let total = executedFlops {
                model.forwardBackward(images: x.images.data, labels: labels.baseAddress!,
                                      tokens: tokens.baseAddress!, batch: b)
            }
            XCTAssertGreaterThan(expected.backward, 0, file: file, line: line)
            XCTAssertEqual(forward, expected.forward, file: file, line: line)
            XCTAssertEqual(total, expected.total, file: file, line: line)
        } }
    }

    private func clipit(vision: TowerTraining, text: TowerTraining) -> CLIPITConfig {
        CLIPITConfig(vision: .tiny, text: .tiny, visionTraining: vision, textTraining: text, classes: 3)
    }

    func testCLIPITWithLoRAOnBothTowers() {
        let training = TowerTraining(lora: Self.lora, targets: .all)
        checkCLIPIT(clipit(vision: training, text: training))
    }

    /// Inference with LoRA merged runs exactly the GEMMs of the same model built without LoRA
    /// (what `clipit bench predict` times): the same calls and FLOPs, so merging costs nothing.
    func testMergedLoRAPredictRunsThePlainModelsGEMMs() {
        let training = TowerTraining(lora: Self.lora, targets: .all)
        let x = Inputs(), b = Self.batch
        func predictGEMMs(_ vision: TowerTraining, merge: Bool) -> (calls: Int, flops: Double) {
            var config = clipit(vision: vision, text: .frozen)
            config.distillation = false   // image-only inference never runs the text tower
            let model = CLIPITModel(config, seed: 1)
            if merge { model.mergeLoRA() }
            let flops = executedFlops { _ = model.predict(images: x.images.data, batch: b) }
            return (GEMMStatistics.calls, flops)
        }
        let plain = predictGEMMs(.frozen, merge: false)
        let merged = predictGEMMs(training, merge: true)
        let unmerged = predictGEMMs(training, merge: false)
        XCTAssertGreaterThan(plain.calls, 0)
        XCTAssertEqual(merged.calls, plain.calls)
        XCTAssertEqual(merged.flops, plain.flops)
        XCTAssertGreaterThan(unmerged.flops, plain.flops, "unmerged LoRA adds its two skinny products per layer")
    }

    func testCLIPITAblations() {
        let training = TowerTraining(lora: Self.lora, targets: .all)
        checkCLIPIT(clipit(vision: .fullFineTune, text: .fullFineTune))
        checkCLIPIT(clipit(vision: .frozen, text: training))          // no LoRA on vision
        checkCLIPIT(clipit(vision: training, text: .frozen))          // no LoRA on text
        var stopped = clipit(vision: training, text: training)
        stopped.textGradient = .stopped
        checkCLIPIT(stopped)
        var early = clipit(vision: training, text: training)
        early.fusion = .early
        early.twoLayerProjection = true
        checkCLIPIT(early)
        var visionOnly = clipit(vision: training, text: training)
        visionOnly.fusion = .visionOnly
        checkCLIPIT(visionOnly)
    }

    func testCLIPITWithDropoutAttentionTargetsAndProjectedVision() {
        let dropout = TowerTraining(lora: LoRAConfig(rank: 3, alpha: 6, dropout: 0.2),
                                    targets: LoRATargets(linears: .attention, patchEmbedding: true,
                                                         tokenEmbedding: false, projection: true))
        var config = clipit(vision: dropout, text: dropout)
        config.vision.projectionDim = 12
        config.vision.preNorm = true
        checkCLIPIT(config)
    }

    func testUnimodal() {
        let x = Inputs(), b = Self.batch
        for training in [TowerTraining(lora: Self.lora, targets: .all), .frozen, .fullFineTune] {
            let model = UnimodalModel(vision: .tiny, training: training, classes: 3, seed: 1)
            let expected = model.trainingFlops(batch: b)
            let total = x.labels.withUnsafeBufferPointer { labels in
                executedFlops { model.forwardBackward(images: x.images.data, labels: labels.baseAddress!, batch: b) }
            }
            XCTAssertEqual(total, expected.total, "\(training)")
            XCTAssertEqual(expected.forward, model.vision.forwardFlops(batch: b)
                           + model.head.layer.forwardFlops(rows: b), "\(training)")
        }
    }

    /// ViT-B/16 at batch 32: the frozen tower's forward is the documented 35.1 GFLOP per
    /// image; LoRA (r = 16 on every block Linear and the patch embedding) adds 2·rows·r·(in
    /// + out) per Linear; with a frozen base the backward is about one forward (data
    /// gradients only, none for the patch embedding) plus the attention products once more
    /// and twice the LoRA products (the patch embedding computes no data gradient). Every
    /// token goes through every block here (`keepsAllTokens`); the class-row-only last block
    /// is counted by EncoderTests and checked against execution by the tests above.
    func testViTB16LoRAStepFlops() {
        let lora = LoRAConfig(rank: 16, alpha: 8)
        let frozenTower = VisionTransformer(config: .vitB16, training: .frozen, store: ParameterStore())
        frozenTower.keepsAllTokens = true
        let frozen = frozenTower.trainingFlops(batch: 32)
        let tower = VisionTransformer(config: .vitB16, training: TowerTraining(lora: lora, targets: .all),
                                      store: ParameterStore())
        tower.keepsAllTokens = true
        let f = tower.trainingFlops(batch: 32)
        XCTAssertEqual(frozen.forward / 32 / 1e9, 35.1, accuracy: 0.05)
        XCTAssertEqual(f.forward, tower.forwardFlops(batch: 32))
        let rows = 32.0 * 197, patches = 32.0 * 196, r = 16.0
        let loraPerBlock = 2 * rows * r * Double((768 + 2304) + (768 + 768) + (768 + 3072) + (3072 + 768))
        let loraForward = 12 * loraPerBlock + 2 * patches * r * (768 + 768)
        XCTAssertEqual(f.forward - frozen.forward, loraForward, accuracy: 1)
        let attention = 12 * 32 * 12 * 2 * gemmFlops(m: 197, n: 197, k: 64)
        // The patch embedding computes neither dX = dY·W nor LoRA's dX += dh·A.
        let patchEmbedding = gemmFlops(m: 32 * 196, n: 768, k: 768) + gemmFlops(m: 32 * 196, n: 768, k: 16)
        XCTAssertEqual(f.backward, frozen.forward - patchEmbedding + attention + 2 * loraForward,
                       accuracy: 1)
    }
}
