import Datasets
import Formats
import Foundation
import Import
import Kernels
import Model
import XCTest

/// Each family's tiny reference folder (reference/make_import_fixtures.py) imported and run:
/// preprocessing against torchvision-on-PIL, token ids against the family's tokenizer, and the
/// projected embeddings against the upstream model, to 1e-4 relative.
final class ModelImportTests: XCTestCase {
    struct Parity {
        var pixelMaxAbs: Float = 0      // after normalisation, in normalised units
        var byteMismatches = 0          // uint8 pixels (before normalisation) that differ
        var imageRelative: Float = 0
        var textRelative: Float = 0
    }

    func check(_ family: String, expectFamily: ModelFamily, text: Bool,
               file: StaticString = #filePath, line: UInt = #line) throws -> Parity {
        let folder = try ImportFixtures.path(family)
        let expected = try ImportFixtures.safetensors(family + "/expected.safetensors")
        let model = try PretrainedModel(directory: folder)
        XCTAssertEqual(model.family, expectFamily, file: file, line: line)
        let encoders = try PretrainedEncoders(model, vision: true, text: text)
        XCTAssertTrue(encoders.report.keptInitial.isEmpty, "\(encoders.report.keptInitial)", file: file, line: line)
        var parity = Parity()

        // Images: preprocessing, then the tower on our pixels.
        let pre = try XCTUnwrap(model.preprocessing)
        var pixels: [Float] = []
        var count = 0
        while expected.contains("input.image.\(count)") {
            let shape = try expected.info("input.image.\(count)").shape
            let bytes = try expected.ints("input.image.\(count)").map(UInt8.init)
            var out = [Float](repeating: 0, count: pre.outputCount)
            bytes.withUnsafeBufferPointer { pre.apply($0, height: shape[0], width: shape[1], channels: shape[2], into: &out) }
            let want = try expected.floats("pixels.\(count)")
            parity.pixelMaxAbs = max(parity.pixelMaxAbs, maxAbsoluteError(out, want))
            // Back to bytes: a one-level difference would be ≥ 1/(255·std) ≈ 0.014.
            for (a, b) in zip(out, want) where abs(a - b) > 1e-3 { parity.byteMismatches += 1 }
            pixels += out
            count += 1
        }
        XCTAssertEqual(count, 4, file: file, line: line)
        let images = pixels.withUnsafeBufferPointer { encoders.embedImages($0.baseAddress!, batch: count) }
        parity.imageRelative = relativeError(images, try expected.floats("image_embeds"))
        XCTAssertLessThan(parity.imageRelative, 1e-4, "\(family) image embeddings", file: file, line: line)
        XCTAssertEqual(parity.byteMismatches, 0, "\(family) preprocessing", file: file, line: line)

        // The tower on the reference pixels too, to separate model error from preprocessing.
        var referencePixels: [Float] = []
        for i in 0..<count { referencePixels += try expected.floats("pixels.\(i)") }
        let fromReference = referencePixels.withUnsafeBufferPointer { encoders.embedImages($0.baseAddress!, batch: count) }
        XCTAssertLessThan(relativeError(fromReference, try expected.floats("image_embeds")), 1e-4, file: file, line: line)

        if text {
            let texts = try ImportFixtures.texts(expected)
            let tokenizer = try XCTUnwrap(encoders.tokenizer)
            let ids = tokenizer.tokenize(texts)
            XCTAssertEqual(ids.map(Int.init), try expected.ints("token_ids"), "\(family) token ids", file: file, line: line)
            let embeds = encoders.embedTexts(texts)
            parity.textRelative = relativeError(embeds, try expected.floats("text_embeds"))
            XCTAssertLessThan(parity.textRelative, 1e-4, "\(family) text embeddings", file: file, line: line)
        }
        print("parity \(family): pixels max |Δ| \(parity.pixelMaxAbs) (\(parity.byteMismatches) byte mismatches), "
              + "image rel \(parity.imageRelative), text rel \(parity.textRelative)")
        return parity
    }

    func testHuggingFaceCLIP() throws {
        _ = try check("hf_clip", expectFamily: .huggingFaceCLIP, text: true)
    }

    func testOpenCLIP() throws {
        _ = try check("open_clip", expectFamily: .openCLIP, text: true)
    }

    func testTimmViT() throws {
        _ = try check("timm", expectFamily: .timm, text: false)
        let model = try PretrainedModel(directory: try ImportFixtures.path("timm"))
        XCTAssertEqual(model.vision?.layerScaleInit, 0.1)
        XCTAssertEqual(model.vision?.layerNormEps, 1e-6)
        XCTAssertEqual(model.preprocessing?.resizeShortSide, 36)   // ⌊32 / 0.875⌋
        XCTAssertThrowsError(try PretrainedEncoders(model, vision: true, text: true))
    }

    func testArchitectureFromConfigs() throws {
        let hf = try PretrainedModel(directory: try ImportFixtures.path("hf_clip"))
        XCTAssertEqual(hf.vision?.activation, .quickGELU)
        XCTAssertEqual(hf.vision?.preNorm, true)
        XCTAssertEqual(hf.vision?.patchBias, false)
        XCTAssertEqual(hf.text?.endOfTextId, 813)      // legacy eos_token_id 2 → the largest id
        let oc = try PretrainedModel(directory: try ImportFixtures.path("open_clip"))
        XCTAssertEqual(oc.vision?.heads, 4)            // width 32 / head_width 8
        XCTAssertEqual(oc.vision?.layerScaleInit, 0.1)
        XCTAssertEqual(oc.text?.projectionDim, 24)
    }

    /// A wrong checkpoint: one error naming the missing, unexpected and mismatched tensors.
    func testMismatchIsOneClearError() throws {
        let source = try ImportFixtures.safetensors("hf_clip/model.safetensors")
        var writer = SafeTensorsWriter()
        for name in source.names {
            if name == "vision_model.encoder.layers.1.self_attn.k_proj.weight" { continue }          // missing
            var shape = try source.info(name).shape
            var values = try source.floats(name)
            if name == "text_model.final_layer_norm.bias" { shape = [31]; values.removeLast() }    // mismatch
            writer.add(name == "text_model.final_layer_norm.weight" ? "text_model.final_norm.weight" : name,
                       shape: shape, floats: values)                                             // renamed
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("clipit-import-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for f in ["config.json", "vocab.json", "merges.txt"] {
            try FileManager.default.copyItem(atPath: try ImportFixtures.path("hf_clip/" + f), toPath: dir + "/" + f)
        }
        try writer.write(to: dir + "/model.safetensors")
        let model = try PretrainedModel(directory: dir)
        XCTAssertThrowsError(try PretrainedEncoders(model)) { error in
            guard let e = error as? WeightImportError else { return XCTFail("\(error)") }
            XCTAssertEqual(e.missing, ["vision_model.encoder.layers.1.self_attn.k_proj.weight ← vision.blocks.1.attn.qkv.weight",
                                       "text_model.final_layer_norm.weight ← text.final_layer_norm.weight"])
            XCTAssertEqual(e.unexpected, ["text_model.final_norm.weight"])
            XCTAssertEqual(e.shapeMismatches.count, 1)
            XCTAssertTrue(e.shapeMismatches[0].contains("text_model.final_layer_norm.bias"))
            XCTAssertTrue(e.description.contains("missing (2)") && e.description.contains("hint:"))
        }
    }

    /// The imported towers written with our names load back through Model's own loader.
    func testInternalExportLoadsWithContractNames() throws {
        let model = try PretrainedModel(directory: try ImportFixtures.path("open_clip"))
        let encoders = try PretrainedEncoders(model)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("clipit-export-\(getpid()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try encoders.writeInternalWeights(to: path)
        let file = try SafeTensorsFile(path: path)
        XCTAssertEqual(file.metadata["family"], "open_clip")
        let store = ParameterStore()
        let vision = VisionTransformer(config: model.vision!, training: .frozen, store: store)
        let text = TextTransformer(config: model.text!, training: .frozen, store: store)
        store.allocate(seed: 9)
        try vision.load(from: file, store: store)
        try text.load(from: file, store: store)
        for p in store.parameters {
            let original = try XCTUnwrap(encoders.store.parameter(named: p.name))
            XCTAssertEqual(Array(UnsafeBufferPointer(start: p.value, count: p.count)),
                           Array(UnsafeBufferPointer(start: original.value, count: original.count)), p.name)
        }
    }

    func testLoRATowerKeepsFactorsAndLoadsBase() throws {
        let model = try PretrainedModel(directory: try ImportFixtures.path("open_clip"))
        let store = ParameterStore()
        let training = TowerTraining(lora: LoRAConfig(rank: 2, alpha: 4), targets: .all)
        let vision = VisionTransformer(config: model.vision!, training: training, store: store)
        store.allocate(seed: 1)
        let report = try model.importWeights(into: store, vision: true, text: false)
        XCTAssertFalse(report.keptInitial.isEmpty)
        XCTAssertTrue(report.keptInitial.allSatisfy(isLoRAParameterName))
        XCTAssertEqual(report.ignored, ["logit_scale"])
        _ = vision
    }
}

final class PreprocessingTests: XCTestCase {
    func testResizedSizeFollowsTorchvision() {
        let p = ImagePreprocessing.clip(size: 224)
        XCTAssertEqual(p.resizedSize(height: 1536, width: 2048).width, 298)   // int(224·2048/1536) = 298
        XCTAssertEqual(p.resizedSize(height: 96, width: 96).height, 224)
        XCTAssertEqual(ImagePreprocessing.timm(size: 224).resizeShortSide, 256)
        XCTAssertEqual(ImagePreprocessing.timm(size: 224, cropPct: 1.0).resizeShortSide, 224)
    }

    func testIdentityResizeAndConstantImage() {
        let image = [UInt8](repeating: 77, count: 5 * 7 * 3)
        XCTAssertEqual(resizePIL(image, height: 5, width: 7, channels: 3, toHeight: 5, toWidth: 7, filter: .bicubic), image)
        // Weights sum to one in fixed point: a constant image stays constant at any scale.
        for (h, w) in [(3, 11), (13, 4), (20, 20)] {
            let r = resizePIL(image, height: 5, width: 7, channels: 3, toHeight: h, toWidth: w, filter: .bicubic)
            XCTAssertEqual(Set(r), [77])
        }
    }

    /// The pattern of reference/make_import_fixtures.py: (3x² + 5y + xy + 85c) mod 256.
    func patternImage(height: Int, width: Int) -> [UInt8] {
        var out: [UInt8] = []
        for y in 0..<height { for x in 0..<width { for c in 0..<3 { out.append(UInt8((3 * x * x + 5 * y + x * y + 85 * c) % 256)) } } }
        return out
    }

    /// Pillow's own `Image.resize` at larger factors than the model fixtures use: every byte equal.
    func testResizeMatchesPillowBitForBit() throws {
        let expected = try ImportFixtures.safetensors("preprocessing/resize.safetensors")
        let cases: [(String, (Int, Int), (Int, Int), ResizeFilter)] = [
            ("down_bicubic", (150, 200), (64, 85), .bicubic), ("up_bicubic", (31, 23), (71, 52), .bicubic),
            ("down_bilinear", (150, 200), (50, 66), .bilinear), ("mixed_bicubic", (40, 90), (120, 45), .bicubic)]
        for (name, (h, w), (th, tw), filter) in cases {
            let out = resizePIL(patternImage(height: h, width: w), height: h, width: w, channels: 3,
                                toHeight: th, toWidth: tw, filter: filter)
            let want = try expected.ints("resize." + name).map(UInt8.init)
            XCTAssertEqual(try expected.info("resize." + name).shape, [th, tw, 3])
            let differing = zip(out, want).filter { $0 != $1 }.count
            XCTAssertEqual(differing, 0, "\(name): \(differing) of \(want.count) bytes differ from Pillow")
        }
    }

    func testNPYHeader() {
        let bytes = NPYWriter.encode([1, 2, 3, 4, 5, 6], shape: [2, 3])
        XCTAssertEqual(Array(bytes[0..<8]), [0x93] + Array("NUMPY".utf8) + [1, 0])
        let headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
        XCTAssertEqual((10 + headerLength) % 64, 0)
        let header = String(decoding: bytes[10..<(10 + headerLength)], as: UTF8.self)
        XCTAssertTrue(header.hasPrefix("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"))
        XCTAssertTrue(header.hasSuffix("\n"))
        XCTAssertEqual(bytes.count, 10 + headerLength + 24)
    }

    func testNPYInt64HeaderAndValues() {
        let bytes = NPYWriter.encode(integers: [7, -1, 1 << 40], shape: [3])
        let headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
        XCTAssertEqual((10 + headerLength) % 64, 0)
        let header = String(decoding: bytes[10..<(10 + headerLength)], as: UTF8.self)
        XCTAssertTrue(header.hasPrefix("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }"))
        let values = bytes[(10 + headerLength)...].withUnsafeBytes { Array($0.bindMemory(to: Int64.self)) }
        XCTAssertEqual(values, [7, -1, 1 << 40])
    }

    func testGunzipFileReadsMembersAndRejectsGarbage() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("clipit-gunzip-\(getpid()).gz").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let text = Array("#version: 0.2\na b\n".utf8)
        try AtomicFileWriter.write(Zlib.deflate(Array(text[..<5]), format: .gzip) + Zlib.deflate(Array(text[5...]), format: .gzip),
                                   to: path)
        XCTAssertEqual(try gunzipFile(path), text)
        try AtomicFileWriter.write([1, 2, 3, 4], to: path)
        XCTAssertThrowsError(try gunzipFile(path)) { error in
            XCTAssertTrue(error is ImportFileError && "\(error)".contains(path), "\(error)")
        }
    }
}
