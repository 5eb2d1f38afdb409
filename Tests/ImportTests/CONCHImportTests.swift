import Datasets
import Formats
import Foundation
@testable import Import
import Kernels
import Model
import TestSupport
import XCTest

/// A CONCH folder (reference/make_conch_fixtures.py: a tiny CoCa built by CONCH's own code at
/// random weights, and a byte-level BPE tokenizer of our own in CONCH's format) imported:
/// `encode_image` / `encode_text` (normalize=False), the tokenizer's ids against
/// `PreTrainedTokenizerFast`, and under full fine-tuning every gradient of both towers.
/// Tolerance 1e-4 relative to the largest reference value, as RegisterViTImportTests derives it
/// (the longest reduction here is the patch GEMM, K = 3·16² = 768: K·u ≈ 4.6e-5).
final class CONCHImportTests: XCTestCase {
    static let tolerance: Float = 1e-4

    func testArchitectureAndPreprocessing() throws {
        let model = try PretrainedModel(directory: try ImportFixtures.path("conch_tiny"))
        XCTAssertEqual(model.family, .conch)
        let vision = try XCTUnwrap(model.vision)
        XCTAssertEqual(vision.pooling, .attentional)
        XCTAssertEqual(vision.attentionalPooling, AttentionalPoolingConfig(width: 16, heads: 8, layerNormEps: 1e-5))
        XCTAssertEqual(vision.projectionDim, 16)
        XCTAssertEqual(vision.layerNormEps, 1e-6)
        let text = try XCTUnwrap(model.text)
        XCTAssertTrue(text.classEmbedding)
        XCTAssertEqual(text.contextLength, 15)   // context_length 16 = 15 ids + the class position
        XCTAssertEqual(text.sequenceLength, 16)
        XCTAssertEqual(text.activation, .gelu)
        XCTAssertEqual(text.endOfTextId, 2)
        let pre = try XCTUnwrap(model.preprocessing)
        XCTAssertEqual(pre.resizeShortSide, 32)
        XCTAssertEqual(pre.cropSize, 32)
        XCTAssertEqual(pre.mean, [0.48145466, 0.4578275, 0.40821073])   // OpenAI CLIP, set by CONCH's factory
    }

    /// CONCH ViT-B/16's sizes (the values of its config, written here): the imported towers
    /// have exactly the parameters of CONCH's contrastive image path and text tower, counted
    /// from CONCH's own CoCa (87,829,248 and 110,129,664).
    func testRealSizeParameterCounts() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("clipit-conch-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config: [String: Any] = [
            "embed_dim": 512, "embed_dim_caption": 768,
            "vision_cfg": ["image_size": 448, "patch_size": 16, "attentional_pool_caption": true,
                           "attentional_pool_contrast": true, "attn_pooler_heads": 8, "n_queries_contrast": 1,
                           "n_queries_caption": 256, "output_tokens": true],
            "text_cfg": ["context_length": 128, "vocab_size": 32007, "width": 768, "heads": 12, "layers": 12,
                         "embed_cls": true, "output_tokens": true],
            "custom_text": true]
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: dir + "/conch_ViT-B-16.json"))
        var weights = SafeTensorsWriter()
        weights.add("logit_scale", shape: [], floats: [0])
        try weights.write(to: dir + "/model.safetensors")
        let model = try PretrainedModel(directory: dir)
        XCTAssertEqual(model.family, .conch)
        XCTAssertEqual(model.vision?.gridSize, 28)
        XCTAssertEqual(model.text?.contextLength, 127)
        func count(_ build: (ParameterStore) -> Void) -> Int {
            let store = ParameterStore()
            build(store)
            return store.parameters.reduce(0) { $0 + $1.count }
        }
        XCTAssertEqual(count { _ = VisionTransformer(config: model.vision!, training: .frozen, store: $0) }, 87_829_248)
        XCTAssertEqual(count { _ = TextTransformer(config: model.text!, training: .frozen, store: $0) }, 110_129_664)
    }

    /// Our byte-level BPE against `PreTrainedTokenizerFast` with CONCH's arguments: the 40 corpus
    /// lines (accents, ligatures, emoji, CJK, HTML entities, a long line) and edge cases (special
    /// tokens inside text, repeated and leading spaces, tabs, newlines, contractions, digits),
    /// at CONCH's 127 ids and at 15.
    func testTokenizerMatchesTransformers() throws {
        let expected = try ImportFixtures.safetensors("conch_tiny/expected_ids.safetensors")
        let texts = try ImportFixtures.texts(expected)
        XCTAssertEqual(texts.count, 51)
        let path = try ImportFixtures.path("conch_tiny/toy_byte_level_bpe.json")
        for length in [127, 15] {
            let tokenizer = try ByteLevelBPETokenizer(json: path, contextLength: length)
            XCTAssertEqual(tokenizer.vocabularySize, 400)
            XCTAssertEqual([tokenizer.startOfTextId, tokenizer.endOfTextId, tokenizer.padId], [1, 2, 0])
            let want = try expected.ints("ids.\(length)")
            let got = tokenizer.tokenize(texts).map(Int.init)
            var differing: [String] = []
            for (i, text) in texts.enumerated() where Array(got[(i * length)..<((i + 1) * length)])
                != Array(want[(i * length)..<((i + 1) * length)]) {
                differing.append(text)
            }
            XCTAssertEqual(differing, [], "context \(length)")
        }
        let tokenizer = try ByteLevelBPETokenizer(json: path, contextLength: 127)
        XCTAssertEqual(ByteLevelBPETokenizer.preTokenize("a  b\tc"), [" a", " ", " b", "\t", "c"])
        XCTAssertEqual(tokenizer.splitSpecialTokens("on <|date|> from"),
                       [.text("on "), .special(6), .text(" from")])
        XCTAssertEqual(ByteLevelBPETokenizer.normalize("Ésophage ÀÉÎ ﬁ"), "esophage aei ﬁ")
    }

    func testTokenizerRefusesOtherFormats() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("clipit-bbpe-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let source = try String(contentsOfFile: try ImportFixtures.path("conch_tiny/toy_byte_level_bpe.json"), encoding: .utf8)
        try source.replacingOccurrences(of: "\"StripAccents\"", with: "\"NFKC\"")
            .write(toFile: dir + "/t.json", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ByteLevelBPETokenizer(json: dir + "/t.json", contextLength: 16)) { error in
            XCTAssertTrue("\(error)".contains("t.json") && "\(error)".contains("normalizer"), "\(error)")
        }
    }

    /// Text embeddings through the folder's tokenizer and text tower, as `clipit embed --texts`
    /// and `clipit pair` compute them.
    func testTextEmbeddingsMatchCONCH() throws {
        let model = try PretrainedModel(directory: try ImportFixtures.path("conch_tiny"))
        let expected = try ImportFixtures.safetensors("conch_tiny/expected.safetensors")
        let encoders = try PretrainedEncoders(model, vision: false, text: true)
        let texts = try ImportFixtures.texts(expected)
        let tokenizer = try XCTUnwrap(encoders.tokenizer)
        let ids = tokenizer.tokenize(texts)
        let reference = try expected.ints("token_ids")   // (4, 16): CONCH's extra placeholder last
        for i in 0..<4 { XCTAssertEqual(ids[(i * 15)..<((i + 1) * 15)].map(Int.init), Array(reference[(i * 16)..<(i * 16 + 15)])) }
        let embeds = encoders.embedTexts(texts)
        let error = relativeError(embeds, try expected.floats("output.text_embeds"))
        XCTAssertLessThan(error, Self.tolerance)
        print("parity conch_tiny: text_embeds rel \(error)")
    }

    /// Full fine-tuning of the text tower: every parameter's gradient (the class embedding,
    /// sliced in_proj weights, transposed projection) against CONCH's autograd.
    func testTextGradientsMatchCONCH() throws {
        let model = try PretrainedModel(directory: try ImportFixtures.path("conch_tiny"))
        let expected = try ImportFixtures.safetensors("conch_tiny/expected.safetensors")
        let store = ParameterStore()
        let tower = TextTransformer(config: model.text!, training: .fullFineTune, store: store)
        tower.isTraining = false
        store.allocate(seed: 0)
        try model.importWeights(into: store, vision: false, text: true)
        let ids = try expected.ints("token_ids").enumerated().filter { $0.offset % 16 != 15 }.map { Int32($0.element) }
        store.zeroGradients()
        try ids.withUnsafeBufferPointer { p in
            let out = Array(UnsafeBufferPointer(start: tower.forward(tokens: p.baseAddress!, batch: 4), count: 4 * 16))
            XCTAssertLessThan(relativeError(out, try expected.floats("output.text_embeds")), Self.tolerance)
            try expected.floats("text.grad_output").withUnsafeBufferPointer { tower.backward(dFeatures: $0.baseAddress!) }
        }
        let worst = try compareGradients(store, model: model, expected: expected, prefix: "text.grad.")
        print("parity conch_tiny: \(store.parameters.count) text gradients, worst rel \(worst.0) (\(worst.1))")
    }

    func testImageEmbeddingsMatchCONCH() throws {
        let model = try PretrainedModel(directory: try ImportFixtures.path("conch_tiny"))
        let expected = try ImportFixtures.safetensors("conch_tiny/expected.safetensors")
        let encoders = try PretrainedEncoders(model, vision: true, text: false)
        XCTAssertTrue(encoders.report.keptInitial.isEmpty)
        XCTAssertTrue(encoders.report.ignored.contains("visual.attn_pool_caption.query"))
        let pixels = try expected.floats("input.pixels")
        let embeds = pixels.withUnsafeBufferPointer { encoders.embedImages($0.baseAddress!, batch: 2) }
        let error = relativeError(embeds, try expected.floats("output.image_embeds"))
        XCTAssertLessThan(error, Self.tolerance)
        print("parity conch_tiny: image_embeds rel \(error)")
    }

    /// Full fine-tuning: L = Σ image_embeds ⊙ grad_output; every parameter's gradient (read
    /// back through the same name mapping: transposed projection, sliced in_proj_bias) and
    /// the image gradient equal CONCH's autograd.
    func testGradientsMatchCONCH() throws {
        let model = try PretrainedModel(directory: try ImportFixtures.path("conch_tiny"))
        let expected = try ImportFixtures.safetensors("conch_tiny/expected.safetensors")
        let store = ParameterStore()
        let tower = VisionTransformer(config: model.vision!, training: .fullFineTune, store: store)
        tower.isTraining = false
        store.allocate(seed: 0)
        try model.importWeights(into: store, vision: true, text: false)
        let pixels = try expected.tensor("input.pixels")
        let embeds = Array(UnsafeBufferPointer(start: tower.forward(images: pixels.data, batch: 2), count: 2 * 16))
        XCTAssertLessThan(relativeError(embeds, try expected.floats("output.image_embeds")), Self.tolerance)
        store.zeroGradients()
        let dImages = Tensor(shape: pixels.shape)
        try expected.floats("grad_output").withUnsafeBufferPointer {
            tower.backward(dFeatures: $0.baseAddress!, dImages: dImages.data)
        }
        let input = relativeError(dImages.array, try expected.floats("grad.input"))
        XCTAssertLessThan(input, Self.tolerance, "input")
        var worst = try compareGradients(store, model: model, expected: expected, prefix: "grad.")
        if input > worst.0 { worst = (input, "input") }
        print("parity conch_tiny: \(store.parameters.count) gradients + input, worst rel \(worst.0) (\(worst.1))")
    }

    /// Compares every parameter's gradient with the reference's `prefix + upstream key`, read
    /// back through the folder's name mapping (transposed, sliced). A key-projection bias has an
    /// exactly zero gradient (softmax ignores a shift shared by all keys): both sides hold
    /// round-off, so it is measured against its whole in_proj_bias gradient instead.
    func compareGradients(_ store: ParameterStore, model: PretrainedModel, expected: SafeTensorsFile,
                          prefix: String, file: StaticString = #filePath,
                          line: UInt = #line) throws -> (Float, String) {
        var worst: (Float, String) = (0, "")
        for p in store.parameters {
            let analytic = Array(UnsafeBufferPointer(start: p.gradient!, count: p.count))
            let reference: [Float]
            var whole: String?
            switch try XCTUnwrap(model.mapping.source(p.name), p.name) {
            case .tensor(let k), .resampledGrid(let k, _, _):
                reference = try expected.floats(prefix + k)
            case .transposed(let k):
                let g = try expected.floats(prefix + k), s = try expected.info(prefix + k).shape
                reference = (0..<(s[0] * s[1])).map { i in g[(i % s[0]) * s[1] + i / s[0]] }
            case .slice(let k, let part, let parts):
                let g = try expected.floats(prefix + k), n = g.count / parts
                reference = Array(g[(part * n)..<((part + 1) * n)])
                if part == 1 && k.hasSuffix("in_proj_bias") { whole = prefix + k }
            case .concatenated:
                XCTFail("\(p.name): no concatenated sources in CONCH", file: file, line: line)
                continue
            }
            let error = try whole.map { key in
                maxAbsoluteError(analytic, reference) / (try expected.floats(key).reduce(0) { max($0, abs($1)) })
            } ?? relativeError(analytic, reference)
            XCTAssertLessThan(error, Self.tolerance, p.name, file: file, line: line)
            if error > worst.0 { worst = (error, p.name) }
        }
        return worst
    }
}
