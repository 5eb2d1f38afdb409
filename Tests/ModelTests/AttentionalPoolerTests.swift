import Foundation
@testable import Model
import Kernels
import XCTest

/// The attentional pooler (CoCa / CONCH) alone and inside a ViT tower: finite-difference
/// gradients of every parameter and of the input, and training regions. Parity with CONCH's
/// own code: ImportTests/CONCHImportTests.
final class AttentionalPoolerTests: XCTestCase {
    /// Two queries of width 8 (2 heads) over 5 tokens of width 6, batch 3: `query`, both
    /// LayerNorms, the separate q/k/v projections, the output projection and dx.
    func testPoolerGradients() {
        let store = ParameterStore()
        let rows = SampleRows(5)
        let pooler = AttentionalPooler("pool", width: 8, contextWidth: 6, heads: 2, queries: 2, eps: 1e-5,
                                       region: .trainable, store: store, rowsPerSample: rows)
        store.allocate(seed: 1)
        LayerGradientTests.randomize(store, seed: 2, std: 0.5)
        let x = LayerGradientTests.randomTensor([3 * 5, 6], seed: 3)
        let dx = Tensor(shape: x.shape), y = Tensor(shape: [3 * 2, 8])
        LayerGradientTests.checkGradients(
            store: store, inputs: [("x", x, dx)], outputCount: 3 * 2 * 8,
            forward: {
                pooler.forward(x.data, y.data, batch: 3, tokens: 5)
                return UnsafePointer(y.data)
            },
            backward: { pooler.backward($0, dx: dx.data) })
        XCTAssertEqual(store.trainableParameters.count, 1 + 2 * 2 + 4 * 2)
    }

    /// A tiny ViT with attentional pooling (CONCH's image tower in small), with and without
    /// the final norm, fully fine-tuned, and under LoRA (pooler frozen like the other base
    /// parameters).
    func testTowerGradientsAndRegions() {
        for finalNorm in [true, false] {
            var config = VisionConfig.tiny
            config.layerScaleInit = nil
            config.finalNorm = finalNorm
            config.pooling = .attentional
            config.attentionalPooling = AttentionalPoolingConfig(width: 16, heads: 8, layerNormEps: 1e-5)
            config.projectionDim = 12
            let store = ParameterStore()
            let vit = VisionTransformer(config: config, training: .fullFineTune, store: store)
            XCTAssertEqual(vit.outputDim, 12)
            store.allocate(seed: 4)
            LayerGradientTests.randomize(store, seed: 5, std: 0.3)
            let images = LayerGradientTests.randomTensor([2, 3, 16, 16], seed: 6)
            let dImages = Tensor(shape: images.shape)
            LayerGradientTests.checkGradients(
                store: store, inputs: [("images", images, dImages)], outputCount: 2 * 12, maxElements: 16,
                forward: { vit.forward(images: images.data, batch: 2) },
                backward: { vit.backward(dFeatures: $0, dImages: dImages.data) })

            let lora = ParameterStore()
            let adapted = VisionTransformer(config: config, training: TowerTraining(lora: LoRAConfig(rank: 2, alpha: 4)),
                                            store: lora)
            XCTAssertFalse(adapted.attentionalPooler!.query.isTrainable)
            XCTAssertFalse(lora.trainableParameters.contains { $0.name.contains("attn_pool") })
        }
    }

    func testConfigRequiresPoolerSettings() throws {
        var config = VisionConfig.tiny
        config.pooling = .attentional
        config.attentionalPooling = AttentionalPoolingConfig(width: 16, heads: 8, layerNormEps: 1e-5)
        XCTAssertEqual(try JSONDecoder().decode(VisionConfig.self, from: JSONEncoder().encode(config)), config)
        var object = try XCTUnwrap(JSONSerialization.jsonObject(with: JSONEncoder().encode(config)) as? [String: Any])
        object["attentionalPooling"] = nil
        XCTAssertThrowsError(try JSONDecoder().decode(VisionConfig.self, from: JSONSerialization.data(withJSONObject: object)))
    }
}
