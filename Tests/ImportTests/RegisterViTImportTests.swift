import Formats
import Foundation
import Import
import Kernels
import Model
import TestSupport
import XCTest

/// timm ViTs with register tokens and DINOv2-style options (reference/make_register_vit_fixtures.py):
/// each folder is imported as `clipit embed` would, run at its evaluation size (the position
/// embedding resampled from the checkpoint's grid as timm's `dynamic_img_size` does) and at its
/// native size with every gradient, against timm.
///
/// Tolerance: float32 throughout. The longest reduction is the patch GEMM (K = 3·14² = 588 for
/// patch 14), whose worst-case rounding is K·u ≈ 3.5e-5 of the operands' magnitudes (u = 2⁻²⁴),
/// typically √K·u ≈ 1.5e-6; two blocks, the softmax and LayerNorm's 1/σ compound it by a small
/// factor. Errors are measured relative to the largest reference magnitude, so 1e-4 leaves
/// about 3× the worst case of one reduction and fails on any misplaced token or row (O(1)).
final class RegisterViTImportTests: XCTestCase {
    static let tolerance: Float = 1e-4

    struct Case {
        var folder: String
        var registers: Int
        var noEmbedClass: Bool
        var patch: Int
        var evaluationSize: Int
        var nativeSize: Int
    }

    static let dinov2 = Case(folder: "timm_reg4_dinov2", registers: 4, noEmbedClass: true, patch: 14,
                             evaluationSize: 42, nativeSize: 56)
    static let embedClass = Case(folder: "timm_reg2_embed_class", registers: 2, noEmbedClass: false, patch: 8,
                                 evaluationSize: 32, nativeSize: 24)

    /// The folder's architecture, the import with a resampled `pos_embed`, pooled features and
    /// every token before the final norm at the evaluation size.
    func checkEvaluation(_ c: Case, file: StaticString = #filePath, line: UInt = #line) throws {
        let model = try PretrainedModel(directory: try ImportFixtures.path(c.folder))
        let expected = try ImportFixtures.safetensors(c.folder + "/expected.safetensors")
        XCTAssertEqual(model.family, .timm, file: file, line: line)
        let vision = try XCTUnwrap(model.vision)
        XCTAssertEqual(vision.registerTokens, c.registers, file: file, line: line)
        XCTAssertEqual(vision.noEmbedClass, c.noEmbedClass, file: file, line: line)
        XCTAssertEqual(vision.patchSize, c.patch, file: file, line: line)
        XCTAssertEqual(vision.imageSize, c.evaluationSize, file: file, line: line)
        let encoders = try PretrainedEncoders(model, vision: true, text: false)
        let (from, to) = (c.nativeSize / c.patch, c.evaluationSize / c.patch)
        XCTAssertEqual(encoders.report.resampled,
                       ["vision.pos_embed: \(from)×\(from) → \(to)×\(to) grid (bicubicAntialiased)"], file: file, line: line)
        XCTAssertTrue(encoders.report.loaded.contains("vision.reg_token"), file: file, line: line)

        let pixels = try expected.floats("input.pixels")
        let batch = try expected.info("input.pixels").shape[0]
        let tower = try XCTUnwrap(encoders.vision)
        tower.keepsAllTokens = true
        let pooled = pixels.withUnsafeBufferPointer { encoders.embedImages($0.baseAddress!, batch: batch) }
        let tokens = Array(UnsafeBufferPointer(start: tower.tokenFeatures, count: batch * vision.tokens * vision.width))
        XCTAssertEqual(try expected.info("output.tokens").shape, [batch, vision.tokens, vision.width], file: file, line: line)
        let tokenError = relativeError(tokens, try expected.floats("output.tokens"))
        let pooledError = relativeError(pooled, try expected.floats("output.pooled"))
        XCTAssertLessThan(tokenError, Self.tolerance, "\(c.folder) tokens", file: file, line: line)
        XCTAssertLessThan(pooledError, Self.tolerance, "\(c.folder) pooled", file: file, line: line)
        print("parity \(c.folder) at \(c.evaluationSize) px: tokens rel \(tokenError), pooled rel \(pooledError)")
    }

    func testDINOv2WithRegistersMatchesTimm() throws { try checkEvaluation(Self.dinov2) }

    func testRegistersWithEmbeddedClassMatchTimm() throws { try checkEvaluation(Self.embedClass) }

    /// At the checkpoint's own size (no resampling), full fine-tuning: the pooled output, every
    /// parameter gradient (class and register tokens, position embedding, LayerScale, …) and
    /// the image gradient of L = Σ pooled ⊙ grad_output equal timm's autograd.
    func checkNativeGradients(_ c: Case, file: StaticString = #filePath, line: UInt = #line) throws {
        let model = try PretrainedModel(directory: try ImportFixtures.path(c.folder))
        let expected = try ImportFixtures.safetensors(c.folder + "/expected.safetensors")
        var config = try XCTUnwrap(model.vision)
        config.imageSize = c.nativeSize
        let store = ParameterStore()
        let tower = VisionTransformer(config: config, training: .fullFineTune, store: store)
        tower.isTraining = false
        store.allocate(seed: 0)
        let report = try model.importWeights(into: store, vision: true, text: false)
        XCTAssertEqual(report.resampled, [], file: file, line: line)
        let pixels = try expected.tensor("native.pixels")
        let batch = pixels.shape[0]
        let pooled = Array(UnsafeBufferPointer(start: tower.forward(images: pixels.data, batch: batch),
                                               count: batch * config.width))
        let pooledError = relativeError(pooled, try expected.floats("native.pooled"))
        XCTAssertLessThan(pooledError, Self.tolerance, "\(c.folder) native pooled", file: file, line: line)

        store.zeroGradients()
        let dImages = Tensor(shape: pixels.shape)
        let dPooled = try expected.floats("native.grad_output")
        dPooled.withUnsafeBufferPointer { tower.backward(dFeatures: $0.baseAddress!, dImages: dImages.data) }
        var worst: (Float, String) = (relativeError(dImages.array, try expected.floats("native.grad.input")), "input")
        var compared = 0
        for p in store.parameters {
            let key = "native.grad." + p.name.dropFirst("vision.".count)
            guard expected.contains(key) else { continue }   // patch_embed.proj.weight is not stored
            let error = relativeError(Array(UnsafeBufferPointer(start: p.gradient!, count: p.count)), try expected.floats(key))
            XCTAssertLessThan(error, Self.tolerance, "\(key)", file: file, line: line)
            if error > worst.0 { worst = (error, key) }
            compared += 1
        }
        XCTAssertEqual(compared, store.parameters.count - 1, file: file, line: line)
        XCTAssertLessThan(worst.0, Self.tolerance, "\(c.folder) gradients (worst \(worst.1))", file: file, line: line)
        print("parity \(c.folder) at \(c.nativeSize) px: pooled rel \(pooledError), \(compared) gradients + input, "
              + "worst rel \(worst.0) (\(worst.1))")
    }

    func testDINOv2WithRegistersGradientsMatchTimm() throws { try checkNativeGradients(Self.dinov2) }

    func testRegistersWithEmbeddedClassGradientsMatchTimm() throws { try checkNativeGradients(Self.embedClass) }

    /// Architecture names: registered defaults, then model_args; unsupported variants refused.
    func testArchitectureNames() throws {
        let dinov2 = try XCTUnwrap(TimmArchitectureProbe.parse("vit_large_patch14_reg4_dinov2.lvd142m"))
        XCTAssertEqual(dinov2.registerTokens, 4)
        XCTAssertTrue(dinov2.noEmbedClass)
        XCTAssertEqual(dinov2.layerScaleInit, 1e-5)
        XCTAssertEqual(dinov2.width, 1024)
        XCTAssertEqual(dinov2.imageSize, 224)   // no input_size or img_size given: timm's default
        let plain = try XCTUnwrap(TimmArchitectureProbe.parse("vit_base_patch14_dinov2", inputSize: 518))
        XCTAssertEqual(plain.registerTokens, 0)
        XCTAssertFalse(plain.noEmbedClass)
        XCTAssertEqual(plain.gridSize, 37)
        XCTAssertNil(TimmArchitectureProbe.parse("vit_base_patch16_224").flatMap(\.layerScaleInit))
        // Parameter counts of timm.create_model(name, num_classes=0, img_size=…).
        func count(_ config: VisionConfig) -> Int {
            let store = ParameterStore()
            _ = VisionTransformer(config: config, training: .frozen, store: store)
            return store.parameters.reduce(0) { $0 + $1.count }
        }
        XCTAssertEqual(count(dinov2), 303_230_976)   // vit_large_patch14_reg4_dinov2, img_size=224
        let small = try XCTUnwrap(TimmArchitectureProbe.parse("vit_small_patch14_dinov2", inputSize: 518))
        XCTAssertEqual(count(small), 22_056_192)   // vit_small_patch14_dinov2, img_size=518
        for name in ["vit_giant_patch14_reg4_dinov2", "vit_base_patch16_reg4_gap_256", "vit_base_patch16_clip_224"] {
            XCTAssertThrowsError(try TimmArchitectureProbe.config(name), name) { error in
                XCTAssertTrue("\(error)".contains("is not supported"), "\(error)")
            }
        }
        XCTAssertThrowsError(try TimmArchitectureProbe.config("vit_small_patch14_reg4_dinov2",
                                                              modelArgs: ["global_pool": "avg"])) { error in
            XCTAssertTrue("\(error)".contains("global_pool='avg'"), "\(error)")
        }
    }

    /// A position embedding whose rows are not prefix + a square grid is one clear error.
    func testBadPositionEmbeddingIsAShapeMismatch() throws {
        let folder = try ImportFixtures.path(Self.dinov2.folder)
        let source = try SafeTensorsFile(path: folder + "/model.safetensors")
        var writer = SafeTensorsWriter()
        for name in source.names {
            var shape = try source.info(name).shape, values = try source.floats(name)
            if name == "pos_embed" { shape[1] -= 1; values.removeLast(shape[2]) }   // 15 rows: not a square
            writer.add(name, shape: shape, floats: values)
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("clipit-reg-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.copyItem(atPath: folder + "/config.json", toPath: dir + "/config.json")
        try writer.write(to: dir + "/model.safetensors")
        XCTAssertThrowsError(try PretrainedEncoders(try PretrainedModel(directory: dir), vision: true, text: false)) { error in
            guard let e = error as? WeightImportError else { return XCTFail("\(error)") }
            XCTAssertEqual(e.shapeMismatches.count, 1)
            XCTAssertTrue(e.shapeMismatches[0].hasPrefix("pos_embed: file shape [1, 15, 32]"), e.shapeMismatches[0])
        }
    }
}

/// Builds timm folders' configs from a name without weights, to test architecture parsing.
enum TimmArchitectureProbe {
    static func config(_ architecture: String, modelArgs: [String: Any] = [:], inputSize: Int? = nil) throws -> VisionConfig {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("clipit-timm-\(getpid())-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var config: [String: Any] = ["architecture": architecture, "model_args": modelArgs]
        if let inputSize { config["pretrained_cfg"] = ["input_size": [3, inputSize, inputSize]] }
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: dir + "/config.json"))
        var weights = SafeTensorsWriter()   // the folder needs a weights file; none is read here
        weights.add("unused", shape: [1], floats: [0])
        try weights.write(to: dir + "/model.safetensors")
        let vision = try PretrainedModel(directory: dir).vision   // errors propagate unrecorded
        return try XCTUnwrap(vision)
    }

    static func parse(_ architecture: String, inputSize: Int? = nil) -> VisionConfig? {
        try? config(architecture, inputSize: inputSize)
    }
}
