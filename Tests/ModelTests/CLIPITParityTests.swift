import Formats
@testable import Import
import Kernels
@testable import Model
import XCTest

/// Tensor-by-tensor comparison with the PyTorch reference (reference/make_fixtures.py):
/// the tiny CLIP-IT model and the "unimodal + LoRA" baseline, loaded by name from the
/// fixtures, must reproduce every output, the loss, every trainable gradient, the image
/// gradient and a 10-step Adam + clipping trajectory.
final class CLIPITParityTests: XCTestCase {
    /// Per-tensor tolerance on max|a − b| / max(max|b|, 1e-6).
    static let tolerance = 1e-4

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    private func open(_ name: String) throws -> SafeTensorsFile {
        let path = Self.fixtures.appendingPathComponent(name).path
        guard FileManager.default.fileExists(atPath: path) else {
            throw XCTSkip("fixture \(name) not present; run python reference/make_fixtures.py")
        }
        return try SafeTensorsFile(path: path)
    }

    /// LoRA r = 4, α = 8 as in the fixtures: vision on every block Linear and the patch
    /// embedding; text on every block Linear and the token embedding, not the projection.
    static let lora = LoRAConfig(rank: 4, alpha: 8)
    static let visionTraining = TowerTraining(
        lora: lora, targets: LoRATargets(linears: .all, patchEmbedding: true, tokenEmbedding: false,
                                         projection: false))
    static let textTraining = TowerTraining(
        lora: lora, targets: LoRATargets(linears: .all, patchEmbedding: false, tokenEmbedding: true,
                                         projection: false))
    static let tinyConfig = CLIPITConfig(vision: .tiny, text: .tiny, visionTraining: visionTraining,
                                         textTraining: textTraining, classes: 3)

    private static func isFixtureData(_ name: String) -> Bool {
        ["input.", "output.", "grad.", "trajectory."].contains { name.hasPrefix($0) }
    }

    /// max|a − b| / max(max|b|, 1e-6).
    static func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        precondition(a.count == b.count, "relativeError: \(a.count) vs \(b.count) values")
        var diff = 0.0, scale = 1e-6
        for i in a.indices {
            diff = max(diff, abs(Double(a[i]) - Double(b[i])))
            scale = max(scale, abs(Double(b[i])))
        }
        return diff / scale
    }

    /// Compares and records the error under `name`.
    private func compare(_ name: String, _ actual: [Float], _ expected: [Float],
                         tolerance: Double = CLIPITParityTests.tolerance,
                         into errors: inout [(String, Double)],
                         file: StaticString = #filePath, line: UInt = #line) {
        guard actual.count == expected.count else {
            XCTFail("\(name): \(actual.count) values, reference has \(expected.count)", file: file, line: line)
            return
        }
        let e = Self.relativeError(actual, expected)
        errors.append((name, e))
        XCTAssertLessThanOrEqual(e, tolerance, "\(name): relative error \(e)", file: file, line: line)
    }

    private func report(_ title: String, _ errors: [(String, Double)]) {
        let worst = errors.max { $0.1 < $1.1 }
        print("\(title): \(errors.count) tensors, worst relative error "
              + "\(worst.map { "\($0.1) (\($0.0))" } ?? "-")")
    }

    private func array(_ p: UnsafePointer<Float>, _ count: Int) -> [Float] {
        Array(UnsafeBufferPointer(start: p, count: count))
    }

    private func values(_ p: Parameter) -> [Float] { array(p.value, p.count) }
    private func gradient(_ p: Parameter) -> [Float] { array(p.gradient!, p.count) }

    private struct Inputs {
        var images: [Float]
        var labels: [Int32]
        var tokens: [Int32]?
    }

    private func inputs(_ file: SafeTensorsFile) throws -> Inputs {
        Inputs(images: try file.floats("input.images"),
               labels: try file.ints("input.labels").map(Int32.init),
               tokens: file.contains("input.token_ids") ? try file.ints("input.token_ids").map(Int32.init) : nil)
    }

    /// Every trainable parameter has a reference gradient and vice versa.
    private func checkTrainableSet(_ store: ParameterStore, _ file: SafeTensorsFile) {
        let ours = Set(store.trainableParameters.map(\.name))
        let theirs = Set(file.names.filter { $0.hasPrefix("grad.") && $0 != "grad.input.images" }
            .map { String($0.dropFirst("grad.".count)) })
        XCTAssertEqual(ours, theirs, "trainable sets differ: only here \(ours.subtracting(theirs).sorted()), "
                       + "only in the reference \(theirs.subtracting(ours).sorted())")
    }

    // MARK: - CLIP-IT

    private func loadedCLIPIT(_ file: SafeTensorsFile) throws -> CLIPITModel {
        let model = CLIPITModel(Self.tinyConfig, seed: 0)
        let report = try model.load(from: file, allowMissing: { _ in false },
                                    ignoreUnexpected: Self.isFixtureData)
        XCTAssertEqual(report.loaded.count, model.store.parameters.count)
        return model
    }

    private func run(_ model: CLIPITModel, _ x: Inputs, dImages: UnsafeMutablePointer<Float>? = nil)
        -> LossBreakdown {
        model.store.zeroGradients()
        return x.images.withUnsafeBufferPointer { images in
            x.labels.withUnsafeBufferPointer { labels in
                x.tokens!.withUnsafeBufferPointer { tokens in
                    model.forwardBackward(images: images.baseAddress!, labels: labels.baseAddress!,
                                          tokens: tokens.baseAddress!, batch: x.labels.count,
                                          dImages: dImages)
                }
            }
        }
    }

    func testCLIPITOutputsLossAndEveryGradientMatchPyTorch() throws {
        let file = try open("clipit_tiny.safetensors")
        let model = try loadedCLIPIT(file)
        checkTrainableSet(model.store, file)
        let x = try inputs(file)
        let b = x.labels.count, c = 3, e = 32, d = 24
        var dImages = [Float](repeating: 0, count: x.images.count)
        let loss = dImages.withUnsafeMutableBufferPointer { run(model, x, dImages: $0.baseAddress!) }
        var errors: [(String, Double)] = []
        compare("output.vision_features", array(model.visionFeatures!, b * e),
                try file.floats("output.vision_features"), into: &errors)
        let branches = model.heads.branchLogits!
        compare("output.vision_logits", branches.vision, try file.floats("output.vision_logits"), into: &errors)
        compare("output.text_logits", branches.textBranch, try file.floats("output.text_logits"), into: &errors)
        compare("output.projected", Array(UnsafeBufferPointer(start: model.heads.projected.data, count: b * d)),
                try file.floats("output.projected"), into: &errors)
        compare("output.fused_logits", array(model.heads.logits.data, b * c),
                try file.floats("output.fused_logits"), into: &errors)
        compare("output.text_embeds", array(model.textEmbeddings!, b * d),
                try file.floats("output.text_embeds"), into: &errors)
        compare("output.ce_loss", [loss.ce], try file.floats("output.ce_loss"), into: &errors)
        compare("output.distill_loss", [loss.distill], try file.floats("output.distill_loss"), into: &errors)
        compare("output.loss", [loss.total], try file.floats("output.loss"), into: &errors)
        report("CLIP-IT outputs", errors)
        var gradErrors: [(String, Double)] = []
        for p in model.store.trainableParameters {
            compare("grad." + p.name, gradient(p), try file.floats("grad." + p.name), into: &gradErrors)
        }
        compare("grad.input.images", dImages, try file.floats("grad.input.images"), into: &gradErrors)
        report("CLIP-IT gradients", gradErrors)
    }

    func testCLIPITAdamClipTrajectoryMatchesPyTorch() throws {
        let file = try open("clipit_tiny.safetensors")
        let model = try loadedCLIPIT(file)
        let x = try inputs(file)
        let adam = Adam(parameterCount: model.store.trainableCount, weightDecay: 1e-4)
        var losses: [Float] = [], norms: [Float] = []
        for _ in 0..<10 {
            losses.append(run(model, x).total)
            norms.append(clipGradientNorm(model.store.gradients.data, count: model.store.trainableCount,
                                          maxNorm: 0.5))
            adam.step(model.store, learningRate: 1e-3)
        }
        var errors: [(String, Double)] = []
        compare("trajectory.adam_clip.loss", losses, try file.floats("trajectory.adam_clip.loss"), into: &errors)
        compare("trajectory.adam_clip.grad_norm", norms, try file.floats("trajectory.adam_clip.grad_norm"),
                into: &errors)
        let prefix = "trajectory.adam_clip.final."
        let finals = file.names.filter { $0.hasPrefix(prefix) }
        XCTAssertFalse(finals.isEmpty)
        for name in finals {
            let p = model.store.parameter(named: String(name.dropFirst(prefix.count)))!
            compare(name, values(p), try file.floats(name), into: &errors)
        }
        report("CLIP-IT trajectory", errors)
    }

    // MARK: - Unimodal + LoRA

    private func loadedUnimodal(_ file: SafeTensorsFile) throws -> UnimodalModel {
        let model = UnimodalModel(vision: .tiny, training: Self.visionTraining, classes: 3, seed: 0)
        let report = try model.load(from: file, allowMissing: { _ in false },
                                    ignoreUnexpected: Self.isFixtureData)
        XCTAssertEqual(report.loaded.count, model.store.parameters.count)
        return model
    }

    private func run(_ model: UnimodalModel, _ x: Inputs, dImages: UnsafeMutablePointer<Float>? = nil)
        -> LossBreakdown {
        model.store.zeroGradients()
        return x.images.withUnsafeBufferPointer { images in
            x.labels.withUnsafeBufferPointer { labels in
                model.forwardBackward(images: images.baseAddress!, labels: labels.baseAddress!,
                                      batch: x.labels.count, dImages: dImages)
            }
        }
    }

    func testUnimodalLoRAOutputsLossAndEveryGradientMatchPyTorch() throws {
        let file = try open("unimodal_lora_tiny.safetensors")
        let model = try loadedUnimodal(file)
        checkTrainableSet(model.store, file)
        let x = try inputs(file)
        let b = x.labels.count
        var dImages = [Float](repeating: 0, count: x.images.count)
        let loss = dImages.withUnsafeMutableBufferPointer { run(model, x, dImages: $0.baseAddress!) }
        var errors: [(String, Double)] = []
        compare("output.vision_features", array(model.visionFeatures!, b * 32),
                try file.floats("output.vision_features"), into: &errors)
        compare("output.vision_logits", array(model.head.logits.data, b * 3),
                try file.floats("output.vision_logits"), into: &errors)
        compare("output.loss", [loss.total], try file.floats("output.loss"), into: &errors)
        XCTAssertFalse(model.store.trainableParameters.isEmpty, "the unimodal+LoRA model has no trainable parameter")
        for p in model.store.trainableParameters {
            compare("grad." + p.name, gradient(p), try file.floats("grad." + p.name), into: &errors)
        }
        compare("grad.input.images", dImages, try file.floats("grad.input.images"), into: &errors)
        report("unimodal+LoRA outputs and gradients", errors)
    }

    func testUnimodalLoRAAdamClipTrajectoryMatchesPyTorch() throws {
        let file = try open("unimodal_lora_tiny.safetensors")
        let model = try loadedUnimodal(file)
        let x = try inputs(file)
        let adam = Adam(parameterCount: model.store.trainableCount, weightDecay: 1e-4)
        var losses: [Float] = [], norms: [Float] = []
        for _ in 0..<10 {
            losses.append(run(model, x).total)
            norms.append(clipGradientNorm(model.store.gradients.data, count: model.store.trainableCount,
                                          maxNorm: 0.5))
            adam.step(model.store, learningRate: 1e-3)
        }
        var errors: [(String, Double)] = []
        compare("trajectory.adam_clip.loss", losses, try file.floats("trajectory.adam_clip.loss"), into: &errors)
        compare("trajectory.adam_clip.grad_norm", norms, try file.floats("trajectory.adam_clip.grad_norm"),
                into: &errors)
        let prefix = "trajectory.adam_clip.final."
        let finals = file.names.filter { $0.hasPrefix(prefix) }
        XCTAssertFalse(finals.isEmpty, "the fixture holds no final parameters to compare")
        for name in finals {
            let p = try XCTUnwrap(model.store.parameter(named: String(name.dropFirst(prefix.count))), name)
            compare(name, values(p), try file.floats(name), into: &errors)
        }
        report("unimodal+LoRA trajectory", errors)
    }

    // MARK: - Inference

    func testPredictIsImageOnlyAndMergedLoRAGivesTheSameLogits() throws {
        let file = try open("clipit_tiny.safetensors")
        let model = try loadedCLIPIT(file)
        let x = try inputs(file)
        let b = x.labels.count
        let logits = x.images.withUnsafeBufferPointer {
            array(model.predict(images: $0.baseAddress!, batch: b), b * 3)
        }
        var errors: [(String, Double)] = []
        compare("predict vs output.fused_logits", logits, try file.floats("output.fused_logits"), into: &errors)
        model.mergeLoRA()
        let merged = x.images.withUnsafeBufferPointer {
            array(model.predict(images: $0.baseAddress!, batch: b), b * 3)
        }
        compare("merged predict", merged, logits, tolerance: 1e-5, into: &errors)
        report("CLIP-IT inference", errors)
    }
}
