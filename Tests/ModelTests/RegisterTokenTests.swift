import Formats
import Foundation
@testable import Import
import Kernels
@testable import Model
import TestSupport
import XCTest

/// Register tokens, `noEmbedClass` and the position-embedding resampling modes of the ViT tower:
/// finite-difference gradients, the token layout, training regions, PyTorch's interpolation values.
/// (Parity with timm's `vit_*_reg*_dinov2`: ImportTests/RegisterViTImportTests.)
final class RegisterTokenTests: XCTestCase {
    /// A tiny ViT with 3 register tokens (16 px, patch 8: 4 patches, T = 1 + 3 + 4).
    static func config(registers: Int = 3, noEmbedClass: Bool, pooling: VisionPooling = .cls) -> VisionConfig {
        var config = VisionConfig.tiny
        config.registerTokens = registers
        config.noEmbedClass = noEmbedClass
        config.pooling = pooling
        return config
    }

    private func checkGradients(_ config: VisionConfig, training: TowerTraining, line: UInt = #line) {
        let store = ParameterStore()
        let vit = VisionTransformer(config: config, training: training, store: store)
        store.allocate(seed: 10)
        LayerGradientTests.randomize(store, seed: 11, std: 0.2)
        let S = config.imageSize, batch = 2
        let images = LayerGradientTests.randomTensor([batch, 3, S, S], seed: 12)
        let dImages = Tensor(shape: images.shape)
        if training.trainBase { XCTAssertNotNil(vit.registerTokens?.gradient, line: line) }
        LayerGradientTests.checkGradients(
            store: store, inputs: [("images", images, dImages)], outputCount: batch * vit.outputDim, maxElements: 16,
            forward: { vit.forward(images: images.data, batch: batch) },
            backward: { vit.backward(dFeatures: $0, dImages: dImages.data) }, line: line)
    }

    /// Full fine-tuning: `reg_token`, `cls_token`, a patches-only `pos_embed` (DINOv2 with
    /// registers), LayerScale, with CLS pooling and with mean pooling over the patches.
    func testRegisterTokenGradientsWithoutClassPositions() {
        checkGradients(Self.config(noEmbedClass: true), training: .fullFineTune)
        checkGradients(Self.config(noEmbedClass: true, pooling: .mean), training: .fullFineTune)
    }

    /// `pos_embed` covering class and register tokens; LoRA with trainable base parameters.
    func testRegisterTokenGradientsWithClassPositions() {
        checkGradients(Self.config(noEmbedClass: false, pooling: .mean),
                       training: TowerTraining(lora: LoRAConfig(rank: 2, alpha: 4), targets: .all, trainBase: true))
    }

    /// Register tokens are base parameters: trainable under full fine-tuning, frozen under LoRA,
    /// like the class token. Shapes follow timm.
    func testRegionsAndShapes() {
        let lora = ParameterStore()
        let withLoRA = VisionTransformer(config: Self.config(noEmbedClass: true),
                                         training: TowerTraining(lora: LoRAConfig(rank: 2, alpha: 4)), store: lora)
        XCTAssertEqual(withLoRA.registerTokens?.shape, [1, 3, 32])
        XCTAssertEqual(withLoRA.positionEmbedding.shape, [1, 4, 32])   // patches only
        XCTAssertFalse(withLoRA.registerTokens!.isTrainable)
        XCTAssertEqual(withLoRA.registerTokens!.isTrainable, withLoRA.classToken.isTrainable)

        let full = ParameterStore()
        let fine = VisionTransformer(config: Self.config(noEmbedClass: false), training: .fullFineTune, store: full)
        XCTAssertTrue(fine.registerTokens!.isTrainable)
        XCTAssertEqual(fine.positionEmbedding.shape, [1, 1 + 3 + 4, 32])
        XCTAssertEqual(fine.config.tokens, 8)

        let none = ParameterStore()
        let plain = VisionTransformer(config: .tiny, training: .fullFineTune, store: none)
        XCTAssertNil(plain.registerTokens)
        XCTAssertFalse(none.parameters.contains { $0.name.hasSuffix("reg_token") })
    }

    /// Token layout with no blocks and no final norm: the class token is token 0 (with or without
    /// its position row), register tokens never reach a mean-pooled feature.
    func testTokenLayoutAndPooling() {
        func tower(_ config: VisionConfig) -> (VisionTransformer, ParameterStore) {
            var config = config
            config.depth = 0
            config.finalNorm = false
            let store = ParameterStore()
            let vit = VisionTransformer(config: config, training: .frozen, store: store)
            store.allocate(seed: 3)
            LayerGradientTests.randomize(store, seed: 4, std: 1)
            return (vit, store)
        }
        let images = LayerGradientTests.randomTensor([1, 3, 16, 16], seed: 5)
        func features(_ vit: VisionTransformer) -> [Float] {
            Array(UnsafeBufferPointer(start: vit.forward(images: images.data, batch: 1), count: 32))
        }
        func values(_ p: Parameter, from: Int = 0, count: Int = 32) -> [Float] {
            Array(UnsafeBufferPointer(start: p.value + from, count: count))
        }
        let (noEmbed, store1) = tower(Self.config(noEmbedClass: true))
        XCTAssertEqual(features(noEmbed), values(noEmbed.classToken))
        let (embed, store2) = tower(Self.config(noEmbedClass: false))
        XCTAssertEqual(features(embed), zip(values(embed.classToken), values(embed.positionEmbedding)).map { $0 + $1 })
        // Register token j is token 1 + j, with position row 1 + j when the class has positions.
        embed.keepsAllTokens = true
        _ = features(embed)
        let tokens = Array(UnsafeBufferPointer(start: embed.tokenFeatures, count: 8 * 32))
        let register2 = zip(values(embed.registerTokens!, from: 2 * 32), values(embed.positionEmbedding, from: 3 * 32))
        XCTAssertEqual(Array(tokens[(3 * 32)..<(4 * 32)]), register2.map { $0 + $1 })

        let (mean, store3) = tower(Self.config(noEmbedClass: true, pooling: .mean))
        let before = features(mean)
        for i in 0..<mean.registerTokens!.count { mean.registerTokens!.value[i] += 5 }
        mean.classToken.value[0] += 5
        XCTAssertEqual(features(mean), before)
        withExtendedLifetime((store1, store2, store3)) {}   // the towers read their stores
    }

    /// Old configurations (without the new keys) decode with the defaults.
    func testConfigDecodesWithoutRegisterKeys() throws {
        var object = try XCTUnwrap(JSONSerialization.jsonObject(with: JSONEncoder().encode(VisionConfig.tiny)) as? [String: Any])
        object["registerTokens"] = nil
        object["noEmbedClass"] = nil
        let decoded = try JSONDecoder().decode(VisionConfig.self, from: JSONSerialization.data(withJSONObject: object))
        XCTAssertEqual(decoded, .tiny)
        let registers = Self.config(noEmbedClass: true)
        XCTAssertEqual(try JSONDecoder().decode(VisionConfig.self, from: JSONEncoder().encode(registers)), registers)
    }

    // MARK: - Position-embedding resampling (values computed with PyTorch 2.15)

    func testInterpolationMatchesPyTorchBicubic() {
        // F.interpolate(arange(6).reshape(1, 1, 2, 3), size=(3, 4), mode="bicubic", antialias=…)
        let source: [Float] = [-7] + (0..<6).map(Float.init)
        let cases: [(GridResampling, [Float])] = [
            (.bicubic, [-0.332194, 0.269368, 1.209798, 1.811361, 1.428223, 2.029785, 2.970215, 3.571777,
                        3.188639, 3.790202, 4.730631, 5.332194]),
            (.bicubicAntialiased, [-0.249607, 0.359227, 1.246037, 1.854871, 1.447761, 2.056595, 2.943405, 3.552239,
                                   3.14513, 3.753964, 4.640774, 5.249608]),
        ]
        for (mode, expected) in cases {
            let out = interpolatePositionEmbedding(source, prefixTokens: 1, oldGrid: (2, 3), newGrid: (3, 4),
                                                   width: 1, mode: mode)
            XCTAssertEqual(out[0], -7)
            for i in expected.indices { XCTAssertEqual(out[1 + i], expected[i], accuracy: 2e-6, "\(mode) [\(i)]") }
        }
    }

    /// Shrinking 4×4 → 3×3: antialiasing widens the kernel (support 2·4/3).
    func testInterpolationShrinkMatchesPyTorch() {
        // (arange(16) ** 1.5 % 7).reshape(1, 1, 4, 4), two channels (the second negated).
        let grid: [Float] = [0, 1, 2.8284271, 5.1961522, 1, 4.1803398, 0.69693851, 4.5202599, 1.6274166, 6,
                             3.6227760, 1.4828720, 6.5692177, 4.8721657, 3.3832016, 2.0947495]
        let source = grid.flatMap { [$0, -$0] }
        let cases: [(GridResampling, [Float])] = [
            (.bicubic, [0.299908, 1.818166, 4.785406, 1.658124, 4.080609, 2.690945, 5.783034, 4.333464, 2.143788]),
            (.bicubicAntialiased, [0.54882, 1.851829, 4.470382, 2.36016, 3.780322, 2.562836, 5.446085, 4.492632,
                                   2.130391]),
        ]
        for (mode, expected) in cases {
            let out = interpolatePositionEmbedding(source, prefixTokens: 0, oldGrid: (4, 4), newGrid: (3, 3),
                                                   width: 2, mode: mode)
            for i in expected.indices {
                XCTAssertEqual(out[2 * i], expected[i], accuracy: 4e-6, "\(mode) [\(i)]")
                XCTAssertEqual(out[2 * i + 1], -expected[i], accuracy: 4e-6, "\(mode) [\(i)]")
            }
        }
    }

    /// Every mode is the identity at the same grid, and keeps a constant grid constant.
    func testInterpolationIdentityAndConstant() {
        let source = LayerGradientTests.randomTensor([2 + 12, 3], seed: 8).array
        for mode in GridResampling.allCases {
            XCTAssertEqual(interpolatePositionEmbedding(source, prefixTokens: 2, oldGrid: (3, 4), newGrid: (3, 4),
                                                        width: 3, mode: mode), source)
            let constant = [Float](repeating: 0.75, count: 9)
            for size in [(2, 2), (5, 7), (1, 1)] {
                let out = interpolatePositionEmbedding(constant, prefixTokens: 0, oldGrid: (3, 3), newGrid: size,
                                                       width: 1, mode: mode)
                for v in out { XCTAssertEqual(v, 0.75, accuracy: 1e-6, "\(mode) \(size)") }
            }
        }
    }

    /// The tower's own loader resamples a patches-only `pos_embed` without touching prefix rows.
    func testLoadResamplesPatchOnlyPositionEmbedding() throws {
        let source = ParameterStore()
        let small = VisionTransformer(config: Self.config(noEmbedClass: true), training: .frozen, store: source)
        source.allocate(seed: 1)
        var writer = SafeTensorsWriter()
        for p in source.parameters { writer.add(p.name, shape: p.shape, pointer: p.value, count: p.count) }
        let path = NSTemporaryDirectory() + "register-tests-\(getpid()).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try writer.write(to: path)
        var config = Self.config(noEmbedClass: true)
        config.imageSize = 24   // 3×3 grid instead of 2×2
        let store = ParameterStore()
        let big = VisionTransformer(config: config, training: .frozen, store: store)
        store.allocate(seed: 2)
        try big.load(from: try SafeTensorsFile(path: path), store: store)
        let expected = interpolatePositionEmbedding(
            Array(UnsafeBufferPointer(start: small.positionEmbedding.value, count: 4 * 32)),
            prefixTokens: 0, oldGrid: (2, 2), newGrid: (3, 3), width: 32)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: big.positionEmbedding.value, count: 9 * 32)), expected)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: big.registerTokens!.value, count: 96)),
                       Array(UnsafeBufferPointer(start: small.registerTokens!.value, count: 96)))
    }
}
