import Kernels
@testable import Model
import XCTest

/// The last block of a tower computes only the rows it pools (`lastBlockPoolsOnly`): the
/// features and every gradient must be those of the full block. Both paths do the same
/// arithmetic for the pooled rows; only the BLAS blocking of the smaller products may
/// differ, which reorders the sums of a dot product of length k ≤ 4E. Its rounding bound
/// is γ_k·Σ|aᵢbᵢ| ≈ k·2⁻²⁴ relative to the terms' magnitude (≤ 128·6·10⁻⁸ ≈ 8·10⁻⁶ here),
/// so 1e-5 relative to each output's scale allows one reordered product per value.
final class PooledLastBlockTests: XCTestCase {
    static let lora = LoRAConfig(rank: 4, alpha: 8)

    /// Features, image gradient and every parameter gradient of one forward/backward.
    private func run(_ store: ParameterStore, forward: () -> UnsafePointer<Float>, count: Int,
                     backward: (UnsafePointer<Float>) -> Void) -> (features: [Float], gradients: [[Float]]) {
        store.zeroGradients()
        let features = Array(UnsafeBufferPointer(start: forward(), count: count))
        let weights = GradientCheck.weights(count: count)
        weights.withUnsafeBufferPointer { backward($0.baseAddress!) }
        let gradients = store.trainableParameters.map { Array(UnsafeBufferPointer(start: $0.gradient!, count: $0.count)) }
        return (features, gradients)
    }

    private func assertSame(_ pooled: (features: [Float], gradients: [[Float]]),
                            _ full: (features: [Float], gradients: [[Float]]), _ what: String,
                            file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertLessThanOrEqual(relativeError(pooled.features, full.features), 1e-5, "\(what) features",
                                 file: file, line: line)
        XCTAssertEqual(pooled.gradients.count, full.gradients.count, file: file, line: line)
        XCTAssertFalse(full.gradients.isEmpty, file: file, line: line)
        for (i, (a, b)) in zip(pooled.gradients, full.gradients).enumerated() {
            XCTAssertLessThanOrEqual(relativeError(a, b), 1e-5, "\(what) gradient \(i)", file: file, line: line)
        }
    }

    private func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        let scale = b.reduce(1e-30) { max($0, Double(abs($1))) }
        return zip(a, b).reduce(0) { max($0, Double(abs($1.0 - $1.1))) } / scale
    }

    func testVisionTowerPooledLastBlockMatchesFullBlock() {
        var separate = VisionConfig.tiny
        separate.qkvLayout = .separate
        separate.registerTokens = 2
        for config in [VisionConfig.tiny, separate] {
            let store = ParameterStore()
            let vit = VisionTransformer(config: config, training: TowerTraining(lora: Self.lora, targets: .all, trainBase: true),
                                        store: store)
            store.allocate(seed: 400)
            LayerGradientTests.randomize(store, seed: 401, std: 0.2)
            let images = LayerGradientTests.randomTensor([3, 3, 16, 16], seed: 402, std: 1)
            let dImages = Tensor(shape: [3, 3, 16, 16])
            func pass(_ keepsAll: Bool) -> (features: [Float], gradients: [[Float]]) {
                vit.keepsAllTokens = keepsAll
                XCTAssertEqual(vit.lastBlockPoolsOnly, !keepsAll)
                dImages.zero()
                var r = run(store, forward: { vit.forward(images: images.data, batch: 3) }, count: 3 * vit.outputDim,
                            backward: { vit.backward(dFeatures: $0, dImages: dImages.data) })
                r.gradients.append(Array(UnsafeBufferPointer(start: dImages.data, count: dImages.count)))
                return r
            }
            let full = pass(true), pooled = pass(false)
            assertSame(pooled, full, "vision \(config.qkvLayout)")
            XCTAssertLessThan(vit.trainingFlops(batch: 3).total, { vit.keepsAllTokens = true; return vit.trainingFlops(batch: 3).total }())
        }
    }

    func testTextTowerPooledLastBlockMatchesFullBlock() {
        for (padding, classEmbedding) in [(false, false), (true, false), (false, true)] {
            var config = TextConfig.tiny
            config.keyPaddingAfterEndOfText = padding
            config.classEmbedding = classEmbedding
            let store = ParameterStore()
            let text = TextTransformer(config: config, training: TowerTraining(lora: Self.lora, targets: .all, trainBase: true),
                                       store: store)
            store.allocate(seed: 410)
            LayerGradientTests.randomize(store, seed: 411, std: 0.2)
            let ids = EncoderTests.tinyTokens()
            func pass(_ keepsAll: Bool) -> (features: [Float], gradients: [[Float]]) {
                text.keepsAllTokens = keepsAll
                return ids.withUnsafeBufferPointer { idp in
                    run(store, forward: { text.forward(tokens: idp.baseAddress!, batch: 3) }, count: 3 * 24,
                        backward: { text.backward(dFeatures: $0) })
                }
            }
            let full = pass(true), pooled = pass(false)
            assertSame(pooled, full, "text padding \(padding) class \(classEmbedding)")
        }
    }

    /// With LoRA dropout active the last block computes every row (its masks are drawn per
    /// token row); in evaluation it pools again.
    func testDropoutKeepsEveryRow() {
        let store = ParameterStore()
        let vit = VisionTransformer(config: .tiny, training: TowerTraining(lora: LoRAConfig(rank: 4, alpha: 8, dropout: 0.1),
                                                                          targets: .all), store: store)
        XCTAssertFalse(vit.lastBlockPoolsOnly)
        vit.isTraining = false
        XCTAssertTrue(vit.lastBlockPoolsOnly)
        var mean = VisionConfig.tiny
        mean.pooling = .mean
        let meanStore = ParameterStore()
        XCTAssertFalse(VisionTransformer(config: mean, training: .frozen, store: meanStore).lastBlockPoolsOnly)
    }
}
