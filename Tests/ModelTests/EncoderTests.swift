import Formats
import Foundation
@testable import Import
import Kernels
@testable import Model
import TestSupport
import XCTest

/// End-to-end checks of the ViT and CLIP text towers: finite-difference gradients of every
/// trainable parameter and of the images, LoRA merging, position-embedding resampling,
/// configurations, and parity with the PyTorch fixtures (timm / HF / PEFT).
final class EncoderTests: XCTestCase {
    static let lora = LoRAConfig(rank: 4, alpha: 8)
    static let randomize = LayerGradientTests.randomize
    static let randomTensor = LayerGradientTests.randomTensor

    /// Token ids (B = 3, L = 16) in the fixtures' format: BOS 62, words, EOS 63, then PAD 0.
    static func tinyTokens(lengths: [Int] = [4, 16, 9], seed: UInt64 = 3) -> [Int32] {
        var rng = RandomGenerator(seed: seed)
        var ids = [Int32](repeating: 0, count: lengths.count * 16)
        for (b, n) in lengths.enumerated() {
            ids[b * 16] = 62
            for t in 1..<(n - 1) { ids[b * 16 + t] = Int32(1 + rng.nextInt(upperBound: 61)) }
            ids[b * 16 + n - 1] = 63
        }
        return ids
    }

    // MARK: - Gradients

    private func checkViT(_ config: VisionConfig, training: TowerTraining, batch: Int = 2,
                          line: UInt = #line) {
        let store = ParameterStore()
        let vit = VisionTransformer(config: config, training: training, store: store)
        store.allocate(seed: 100)
        Self.randomize(store, 101, 0.2)
        let S = config.imageSize
        let images = Self.randomTensor([batch, 3, S, S], 102, 1)
        let dImages = Tensor(shape: [batch, 3, S, S])
        LayerGradientTests.checkGradients(
            store: store, inputs: [("images", images, dImages)], outputCount: batch * vit.outputDim,
            maxElements: 16,
            forward: { vit.forward(images: images.data, batch: batch) },
            backward: { vit.backward(dFeatures: $0, dImages: dImages.data) }, line: line)
    }

    /// Tiny ViT of the contract with LoRA everywhere (B nonzero) and trainable norms,
    /// class token, position embedding and LayerScale.
    func testTinyViTGradients() {
        checkViT(.tiny, training: TowerTraining(lora: Self.lora, targets: .all, trainBase: true))
    }

    /// CLIP-style variant: pre-norm, QuickGELU, no patch bias, projection, mean pooling,
    /// full fine-tuning.
    func testViTVariantGradients() {
        var config = VisionConfig.clipB16
        config.imageSize = 16
        config.patchSize = 8
        config.width = 16
        config.depth = 2
        config.heads = 2
        config.mlpHidden = 24
        config.projectionDim = 12
        config.pooling = .mean
        config.layerScaleInit = 0.5
        checkViT(config, training: .fullFineTune)
        config.qkvLayout = .separate
        config.pooling = .cls
        checkViT(config, training: TowerTraining(lora: Self.lora, targets: LoRATargets.attentionOnly))
    }

    func testTinyTextGradients() {
        for padding in [false, true] {
            var config = TextConfig.tiny
            config.keyPaddingAfterEndOfText = padding
            let store = ParameterStore()
            let text = TextTransformer(config: config,
                                       training: TowerTraining(lora: Self.lora, targets: .all, trainBase: true),
                                       store: store)
            store.allocate(seed: 200)
            Self.randomize(store, 201, 0.2)
            let ids = Self.tinyTokens()
            ids.withUnsafeBufferPointer { idp in
                LayerGradientTests.checkGradients(
                    store: store, outputCount: 3 * 24, maxElements: 16,
                    forward: { text.forward(tokens: idp.baseAddress!, batch: 3) },
                    backward: { text.backward(dFeatures: $0) })
            }
            XCTAssertEqual(text.poolPositions, [3, 15, 8])
        }
    }

    /// Padding after the end-of-text token changes nothing (causal attention), with or
    /// without the optional key-padding mask; both settings give the same features.
    func testTextPaddingIsIgnored() {
        var outputs: [[Float]] = []
        for padding in [false, true] {
            var config = TextConfig.tiny
            config.keyPaddingAfterEndOfText = padding
            let store = ParameterStore()
            let text = TextTransformer(config: config, training: .frozen, store: store)
            store.allocate(seed: 5)
            var ids = Self.tinyTokens()
            let a = ids.withUnsafeBufferPointer { Array(UnsafeBufferPointer(start: text.forward(tokens: $0.baseAddress!, batch: 3), count: 72)) }
            ids[5] = 17; ids[15] = 40   // after the EOS of sequence 0
            let b = ids.withUnsafeBufferPointer { Array(UnsafeBufferPointer(start: text.forward(tokens: $0.baseAddress!, batch: 3), count: 72)) }
            XCTAssertEqual(a, b)
            outputs.append(a)
        }
        for i in 0..<72 { XCTAssertEqual(outputs[0][i], outputs[1][i], accuracy: 1e-6) }
    }

    // MARK: - LoRA merge, training switches

    func testMergedLoRAMatchesUnmerged() {
        let store = ParameterStore()
        let training = TowerTraining(lora: LoRAConfig(rank: 4, alpha: 8, dropout: 0.1), targets: .all)
        let vit = VisionTransformer(config: .tiny, training: training, store: store)
        let text = TextTransformer(config: .tiny, training: training, store: store)
        store.allocate(seed: 300)
        Self.randomize(store, 301, 0.2)
        vit.isTraining = false
        text.isTraining = false
        XCTAssertTrue(vit.linears.allSatisfy { !$0.isTraining })
        let images = Self.randomTensor([3, 3, 16, 16], 302, 1)
        let ids = Self.tinyTokens()
        func run() -> ([Float], [Float]) {
            let v = Array(UnsafeBufferPointer(start: vit.forward(images: images.data, batch: 3), count: 3 * 32))
            let t = ids.withUnsafeBufferPointer {
                Array(UnsafeBufferPointer(start: text.forward(tokens: $0.baseAddress!, batch: 3), count: 3 * 24))
            }
            return (v, t)
        }
        let frozen = store.frozen.array
        let (v0, t0) = run()
        let flops = vit.forwardFlops(batch: 3)
        vit.mergeLoRA()
        text.mergeLoRA()
        XCTAssertLessThan(vit.forwardFlops(batch: 3), flops)
        let (v1, t1) = run()
        let visionTolerance = Self.mergeTolerance(vit.linears), textTolerance = Self.mergeTolerance(text.linears)
        assertClose(v1, v0, tolerance: visionTolerance, "merged vision")
        assertClose(t1, t0, tolerance: textTolerance, "merged text")
        vit.unmergeLoRA()
        text.unmergeLoRA()
        let restored = store.frozen.array
        var worst: Float = 0
        for i in frozen.indices { worst = max(worst, abs(restored[i] - frozen[i])) }
        XCTAssertLessThan(worst, 1e-6)
        let (v2, t2) = run()   // unmerged LoRA path again
        assertClose(v2, v0, tolerance: visionTolerance, "unmerged vision")
        assertClose(t2, t0, tolerance: textTolerance, "unmerged text")
    }

    /// The rounding bound for a tower computed with merged against unmerged LoRA. Each
    /// Linear's output, either way, is within γ_m = m·u/(1 − m·u) (u = 2⁻²⁴, m = fan-in
    /// + rank + 2 for the scale and the sum of the two paths; Higham, Accuracy and Stability,
    /// Thm 3.5) of the exact product relative to the magnitudes of its terms, so the two
    /// differ by at most 2γ_m per Linear; with layers of unit gain, first-order errors add
    /// along the tower: the sum over its Linears (6.7·10⁻⁵ for the tiny ViT, whose 40-seed
    /// worst case measured 1.3·10⁻⁵).
    static func mergeTolerance(_ linears: [Linear]) -> Float {
        let u = 0x1p-24
        let bound = linears.reduce(0.0) { sum, layer in
            let m = Double(layer.inFeatures + (layer.lora?.rank ?? 0) + 2)
            return sum + 2 * m * u / (1 - m * u)
        }
        return Float(bound)
    }

    /// With LoRA dropout, features of images 2..<4 computed as a batch of 2 starting at
    /// global image 2 equal those computed inside a batch of 4 (masks follow global rows).
    func testDropoutMasksDoNotDependOnBatchSplit() {
        let store = ParameterStore()
        let vit = VisionTransformer(config: .tiny, training: TowerTraining(
            lora: LoRAConfig(rank: 4, alpha: 8, dropout: 0.3), targets: .all), store: store)
        store.allocate(seed: 1)
        Self.randomize(store, 2, 0.2)
        let images = Self.randomTensor([4, 3, 16, 16], 3, 1)
        store.execution.dropout = DropoutStream(seed: 9, step: 4, firstGlobalRow: 0)
        let whole = Array(UnsafeBufferPointer(start: vit.forward(images: images.data, batch: 4), count: 4 * 32))
        store.execution.dropout = DropoutStream(seed: 9, step: 4, firstGlobalRow: 2)
        let half = Array(UnsafeBufferPointer(start: vit.forward(images: images.data + 2 * 3 * 16 * 16, batch: 2),
                                             count: 2 * 32))
        assertClose(half, Array(whole[64...]), tolerance: 1e-5, "split batch")
        vit.isTraining = false
        let eval = Array(UnsafeBufferPointer(start: vit.forward(images: images.data, batch: 4), count: 4 * 32))
        XCTAssertNotEqual(eval, whole)
    }

    func testTrainingRegions() {
        let store = ParameterStore()
        _ = VisionTransformer(config: .tiny, training: .frozen, store: store)
        _ = TextTransformer(config: .tiny, training: .frozen, store: store)
        XCTAssertTrue(store.trainableParameters.isEmpty)

        let lora = ParameterStore()
        _ = VisionTransformer(config: .tiny, training: TowerTraining(lora: Self.lora, targets: .attentionOnly),
                              store: lora)
        let names = lora.trainableParameters.map(\.name)
        XCTAssertEqual(names.count, 2 * 2 * 2)   // depth × {qkv, proj} × {A, B}
        XCTAssertTrue(names.allSatisfy { $0.contains(".attn.") && isLoRAParameterName($0) })

        let all = ParameterStore()
        let text = TextTransformer(config: .tiny, training: TowerTraining(lora: Self.lora), store: all)
        let textNames = all.trainableParameters.map(\.name)
        XCTAssertTrue(textNames.allSatisfy(isLoRAParameterName))
        XCTAssertTrue(textNames.contains("text.embeddings.token_embedding.lora_embedding_A"))
        XCTAssertFalse(textNames.contains { $0.hasPrefix("text.text_projection") })
        XCTAssertEqual(textNames.count, 2 + 2 * 6 * 2)
        XCTAssertFalse(text.tokenEmbedding.weight.isTrainable)

        let full = ParameterStore()
        _ = VisionTransformer(config: .tiny, training: .fullFineTune, store: full)
        XCTAssertEqual(full.frozenCount, 0)
    }

    // MARK: - Position embedding resampling

    func testInterpolationIdentityAtSameGrid() {
        let source = Self.randomTensor([1 + 12, 5], 1, 1).array
        let out = interpolatePositionEmbedding(source, prefixTokens: 1, oldGrid: (3, 4), newGrid: (3, 4), width: 5)
        XCTAssertEqual(out, source)
    }

    /// Matches `F.interpolate(x, size=(3, 4), mode="bilinear", align_corners=False)` for
    /// x = arange(6).reshape(1, 1, 2, 3) (values computed with PyTorch).
    func testInterpolationMatchesPyTorchBilinear() {
        let source: [Float] = [-7] + (0..<6).map(Float.init)   // one prefix token, width 1
        let out = interpolatePositionEmbedding(source, prefixTokens: 1, oldGrid: (2, 3), newGrid: (3, 4), width: 1,
                                               mode: .bilinear)
        let expected: [Float] = [-7, 0.0, 0.625, 1.375, 2.0, 1.5, 2.125, 2.875, 3.5, 3.0, 3.625, 4.375, 5.0]
        XCTAssertEqual(out.count, expected.count)
        for i in expected.indices { XCTAssertEqual(out[i], expected[i], accuracy: 1e-6) }
    }

    /// Loading a checkpoint trained at another grid resamples `pos_embed`; a wrong width is
    /// reported together with missing and unexpected tensors in one error.
    func testLoadResamplesPositionEmbeddingAndReportsProblems() throws {
        let source = ParameterStore()
        let small = VisionTransformer(config: .tiny, training: .frozen, store: source)
        source.allocate(seed: 1)
        var writer = SafeTensorsWriter()
        for p in source.parameters { writer.add(p.name, shape: p.shape, pointer: p.value, count: p.count) }
        let path = NSTemporaryDirectory() + "encoder-tests-\(getpid()).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try writer.write(to: path)
        let file = try SafeTensorsFile(path: path)

        var config = VisionConfig.tiny
        config.imageSize = 32   // 4×4 grid instead of 2×2
        let store = ParameterStore()
        let big = VisionTransformer(config: config, training: TowerTraining(lora: Self.lora), store: store)
        store.allocate(seed: 2)
        let report = try big.load(from: file, store: store)
        XCTAssertTrue(report.keptInitial.allSatisfy(isLoRAParameterName))
        XCTAssertFalse(report.keptInitial.isEmpty)
        let expected = interpolatePositionEmbedding(
            Array(UnsafeBufferPointer(start: small.positionEmbedding.value, count: 5 * 32)),
            prefixTokens: 1, oldGrid: (2, 2), newGrid: (4, 4), width: 32)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: big.positionEmbedding.value, count: 17 * 32)), expected)
        XCTAssertEqual(big.blocks[1].mlp.fc2.weight.value[7], small.blocks[1].mlp.fc2.weight.value[7])

        var wide = VisionConfig.tiny
        wide.width = 48
        wide.depth = 3
        let wrong = ParameterStore()
        let vit = VisionTransformer(config: wide, training: .frozen, store: wrong)
        wrong.allocate(seed: 3)
        XCTAssertThrowsError(try vit.load(from: file, store: wrong)) { error in
            let e = error as! WeightLoadingError
            XCTAssertTrue(e.missing.contains("vision.blocks.2.norm1.weight"))
            XCTAssertTrue(e.shapeMismatches.contains { $0.hasPrefix("vision.norm.weight") })
            XCTAssertTrue(e.description.contains("hint"))
        }
        let narrow = ParameterStore()
        var shallow = VisionConfig.tiny
        shallow.depth = 1
        let v1 = VisionTransformer(config: shallow, training: .frozen, store: narrow)
        narrow.allocate(seed: 4)
        XCTAssertThrowsError(try v1.load(from: file, store: narrow)) { error in
            XCTAssertTrue((error as! WeightLoadingError).unexpected.contains("vision.blocks.1.norm1.weight"))
        }
    }

    // MARK: - Configurations and FLOPs

    func testPresetParameterCounts() {
        func count(_ build: (ParameterStore) -> Void) -> Int {
            let store = ParameterStore()
            build(store)
            return store.parameters.reduce(0) { $0 + $1.count }
        }
        // timm num_classes=0 counts (vit_small/base/large_patch16_224; L with init_values).
        XCTAssertEqual(count { _ = VisionTransformer(config: .vitS16, training: .frozen, store: $0) }, 21_665_664)
        XCTAssertEqual(count { _ = VisionTransformer(config: .vitB16, training: .frozen, store: $0) }, 85_798_656)
        XCTAssertEqual(count { _ = VisionTransformer(config: .vitL16, training: .frozen, store: $0) }, 303_350_784)
        // timm vit_base_patch16_clip_224 with num_classes=512 has 86,193,152 incl. a 512 head bias.
        XCTAssertEqual(count { _ = VisionTransformer(config: .clipB16, training: .frozen, store: $0) },
                       86_193_152 - 512)
        // HF CLIPTextModelWithProjection(CLIPTextConfig(projection_dim=512)).
        XCTAssertEqual(count { _ = TextTransformer(config: .clip, training: .frozen, store: $0) }, 63_428_096)
    }

    func testConfigsAreCodable() throws {
        for config in [VisionConfig.tiny, .vitL16, .clipB32] {
            let data = try JSONEncoder().encode(config)
            XCTAssertEqual(try JSONDecoder().decode(VisionConfig.self, from: data), config)
        }
        let text = try JSONDecoder().decode(TextConfig.self, from: JSONEncoder().encode(TextConfig.clip))
        XCTAssertEqual(text, .clip)
        let training = TowerTraining(lora: Self.lora, targets: .attentionOnly, trainBase: true)
        XCTAssertEqual(try JSONDecoder().decode(TowerTraining.self, from: JSONEncoder().encode(training)), training)
    }

    func testForwardFlops() {
        let store = ParameterStore()
        let vit = VisionTransformer(config: .vitB16, training: .frozen, store: store)
        // Per image: patch GEMM 196·768·768 + 12 × (4·197·768² + 2·197·768·3072 + 2·197²·768), ×2.
        let T = 197.0, E = 768.0
        let perImage = 2 * (196 * E * E + 12 * (4 * T * E * E + 2 * T * E * 3072 + 2 * T * T * E))
        vit.keepsAllTokens = true   // the published count: every token through every block
        XCTAssertEqual(vit.forwardFlops(batch: 2), 2 * perImage, accuracy: 1)
        XCTAssertEqual(vit.forwardFlops(batch: 1) / 1e9, 35.1, accuracy: 0.1)   // 17.6 GMACs
        // The last block for the class row only: q·Kᵀ and p·V of one row, the projection
        // and the MLP of one row; K and V still for every token.
        vit.keepsAllTokens = false
        let lastBlockSaving = 2 * ((T - 1) * E * E + 2 * (T - 1) * E * 3072 + 2 * (T - 1) * T * E)
        XCTAssertEqual(vit.forwardFlops(batch: 2), 2 * (perImage - lastBlockSaving), accuracy: 1)
        let text = TextTransformer(config: .clip, training: .frozen, store: store)
        let L = 77.0, D = 512.0
        let perText = 2 * (12 * (4 * L * D * D + 2 * L * D * 2048 + 2 * L * L * D) + D * 512)
        let textSaving = 2 * ((L - 1) * D * D + 2 * (L - 1) * D * 2048 + 2 * (L - 1) * L * D)
        XCTAssertEqual(text.forwardFlops(batch: 1), perText - textSaving, accuracy: 1)
        text.keepsAllTokens = true
        XCTAssertEqual(text.forwardFlops(batch: 1), perText, accuracy: 1)
    }

    // MARK: - Parity with the PyTorch fixtures

    static func fixture(_ name: String) throws -> SafeTensorsFile {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures").appendingPathComponent(name + ".safetensors")
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw XCTSkip("fixture \(name).safetensors not generated (python reference/make_fixtures.py)")
        }
        return try SafeTensorsFile(path: url.path)
    }

    func testVisionTowerMatchesTimm() throws {
        let file = try Self.fixture("clipit_tiny")
        let store = ParameterStore()
        let vit = VisionTransformer(config: .tiny, training: TowerTraining(lora: Self.lora), store: store)
        store.allocate(seed: 1)
        let report = try vit.load(from: file, store: store, allowMissing: { _ in false })
        XCTAssertEqual(report.loaded.count, store.parameters.count)
        vit.isTraining = false
        let images = try file.tensor("input.images")
        let features = vit.forward(images: images.data, batch: 3)
        assertClose(Array(UnsafeBufferPointer(start: features, count: 3 * 32)),
                    try file.floats("output.vision_features"), tolerance: 1e-4, "vision_features")
    }

    func testTextTowerMatchesHuggingFace() throws {
        let file = try Self.fixture("clipit_tiny")
        let store = ParameterStore()
        let text = TextTransformer(config: .tiny, training: TowerTraining(lora: Self.lora), store: store)
        store.allocate(seed: 1)
        let report = try text.load(from: file, store: store, allowMissing: { _ in false })
        XCTAssertEqual(report.loaded.count, store.parameters.count)
        let ids = try file.ints("input.token_ids").map { Int32($0) }
        let embeds = ids.withUnsafeBufferPointer {
            Array(UnsafeBufferPointer(start: text.forward(tokens: $0.baseAddress!, batch: 3), count: 3 * 24))
        }
        assertClose(embeds, try file.floats("output.text_embeds"), tolerance: 1e-4, "text_embeds")
    }

    /// Isolated layers from layers_tiny.safetensors: outputs and every gradient
    /// (loss = Σ output ⊙ grad_output).
    func testLayersMatchPyTorch() throws {
        let file = try Self.fixture("layers_tiny")
        func compareGradients(_ store: ParameterStore, prefix: String, case name: String) throws {
            for p in store.trainableParameters {
                let key = "layer.\(name).grad." + p.name.dropFirst(prefix.count)
                // The key-projection bias has an exactly zero gradient (softmax is
                // shift-invariant); both sides hold ~1e-7 round-off, hence the floor.
                assertClose(Array(UnsafeBufferPointer(start: p.gradient!, count: p.count)),
                            try file.floats(key), tolerance: 1e-4, key, absoluteFloor: 1e-2)
            }
        }
        // timm block and HF CLIP layer.
        for (name, naming, tokens) in [("vit_block", BlockNaming.timm, 5), ("clip_text_layer", .hfCLIP, 16)] {
            let timm = naming == .timm
            let store = ParameterStore()
            let prefix = "layer.\(name).param"
            let block = TransformerBlock(prefix, width: 32, heads: 4, mlpHidden: 64,
                                         activation: timm ? .gelu : .quickGELU, eps: timm ? 1e-6 : 1e-5,
                                         layerScaleInit: timm ? 0.1 : nil, naming: naming,
                                         qkv: timm ? .fused : .separate, causal: !timm, region: .trainable,
                                         lora: BlockLoRA(attention: nil, mlp: nil), store: store)
            store.allocate(seed: 1)
            try store.load(from: file, prefix: prefix + ".")
            let x = try file.tensor("layer.\(name).input")
            let y = Tensor(shape: x.shape), dx = Tensor(shape: x.shape)
            block.forward(x.data, y.data, batch: 3, tokens: tokens)
            assertClose(y.array, try file.floats("layer.\(name).output"), tolerance: 1e-4, name)
            let dy = try file.tensor("layer.\(name).grad_output")
            store.zeroGradients()
            block.backward(dy.data, dx: dx.data)
            assertClose(dx.array, try file.floats("layer.\(name).grad.input"), tolerance: 1e-4, name + " dx")
            try compareGradients(store, prefix: prefix + ".", case: name)
        }
        // PEFT Conv2d LoRA as a patch embedding (output NCHW (3, 32, 2, 2) vs our (3·4, 32)).
        do {
            let store = ParameterStore()
            let embed = PatchEmbedding("pe", patchSize: 8, width: 32, bias: true, region: .frozen,
                                       lora: Self.lora, store: store)
            store.allocate(seed: 1)
            try store.load(from: file, prefix: "pe.proj.", filePrefix: "layer.lora_conv.param.")
            let x = try file.tensor("layer.lora_conv.input")
            let y = Tensor(shape: [12, 32]), dx = Tensor(shape: x.shape)
            embed.forward(x.data, y.data, batch: 3, height: 16, width: 16)
            let nchw = try file.floats("layer.lora_conv.output")
            var rows = [Float](repeating: 0, count: 12 * 32)
            for b in 0..<3 { for e in 0..<32 { for n in 0..<4 { rows[(b * 4 + n) * 32 + e] = nchw[(b * 32 + e) * 4 + n] } } }
            assertClose(y.array, rows, tolerance: 1e-4, "lora_conv")
            let dyNCHW = try file.floats("layer.lora_conv.grad_output")
            let dy = Tensor(shape: [12, 32])
            for b in 0..<3 { for e in 0..<32 { for n in 0..<4 { dy.data[(b * 4 + n) * 32 + e] = dyNCHW[(b * 32 + e) * 4 + n] } } }
            store.zeroGradients()
            embed.backward(dy.data, dImages: dx.data)
            assertClose(dx.array, try file.floats("layer.lora_conv.grad.input"), tolerance: 1e-4, "lora_conv dx")
            try compareGradients(store, prefix: "pe.proj.", case: "lora_conv")
        }
        // PEFT Embedding LoRA.
        do {
            let store = ParameterStore()
            let prefix = "layer.lora_embedding.param"
            let embed = TokenEmbedding(prefix, vocabularySize: 64, width: 32, region: .frozen,
                                       lora: Self.lora, store: store)
            store.allocate(seed: 1)
            try store.load(from: file, prefix: prefix + ".")
            let ids = try file.ints("layer.lora_embedding.input").map { Int32($0) }
            let y = Tensor(shape: [12, 32])
            let dy = try file.tensor("layer.lora_embedding.grad_output")
            try ids.withUnsafeBufferPointer { idp in
                embed.forward(idp.baseAddress!, y.data, rows: 12)
                assertClose(y.array, try file.floats("layer.lora_embedding.output"), tolerance: 1e-4, "lora_embedding")
                store.zeroGradients()
                embed.backward(dy.data)
            }
            try compareGradients(store, prefix: prefix + ".", case: "lora_embedding")
        }
    }

    // MARK: - Helpers

    /// |a − b| ≤ tol · max(|b_i|, 5% of max|b|, absoluteFloor) elementwise (relative, with a
    /// floor for entries near zero).
    func assertClose(_ a: [Float], _ b: [Float], tolerance: Float, _ name: String,
                     absoluteFloor: Float = 1e-30,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, "\(name): count", file: file, line: line)
        guard a.count == b.count else { return }
        let scale = b.reduce(0) { max($0, abs($1)) }
        var worst: Float = 0, at = 0
        for i in a.indices {
            let e = abs(a[i] - b[i]) / max(abs(b[i]), 0.05 * scale, absoluteFloor)
            if !(e <= worst) { worst = e; at = i }
        }
        XCTAssertLessThanOrEqual(worst, tolerance, "\(name): worst relative error \(worst) at [\(at)]: \(a[at]) vs \(b[at])",
                                 file: file, line: line)
    }
}
