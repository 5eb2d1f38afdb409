import Distributed
import Formats
import Foundation
@testable import Import
@testable import Model
@testable import Training
import XCTest

/// Relocatable runs: checkpoints record their inputs relative to the run folder when inside
/// it, absolute otherwise, with fingerprints; a moved run folder evaluates and resumes, and
/// a missing or changed input is named by its configuration key.
final class RunInputsTests: XCTestCase {
    var data: TinyTrainingData!
    let manager = FileManager.default

    override func setUpWithError() throws { data = try TinyTrainingData() }
    override func tearDown() { data.remove() }

    /// A frozen vision tower file (the weights of another seed's model) at `path`.
    private func writeVisionTower(to path: String, seed: Int = 7) throws {
        let pretrained = try makeModel(try data.config(method: "unimodal", overrides: ["seed=\(seed)"]), classes: 3)
        var writer = SafeTensorsWriter()
        for p in pretrained.store.parameters where p.name.hasPrefix("vision.") {
            writer.add(p.name, shape: p.shape, pointer: UnsafePointer(p.value), count: p.count)
        }
        try writer.write(to: path)
    }

    private func train(_ out: String, initPath: String, stopAfter: Int = 0, resume: String? = nil) throws -> TrainingSummary {
        let config = try data.config(method: "unimodal-lora", overrides: [
            "model.init_vision=\(initPath)", "train.stop_after_steps=\(stopAfter)", "train.validations_per_epoch=1"])
        return try Trainer(config: config, comm: SingleRankCommunicator(), outputDirectory: out, resume: resume,
                           showProgress: false).run()
    }

    func testInputsInsideTheRunFolderAreStoredRelativeOthersAbsolute() throws {
        let run = data.directory + "/run"
        try manager.createDirectory(atPath: run + "/models", withIntermediateDirectories: true)
        try writeVisionTower(to: run + "/models/vision.safetensors")
        _ = try train(run, initPath: run + "/models/vision.safetensors")
        let file = try SafeTensorsFile(path: run + "/last.safetensors")
        let stored = try TrainingConfig.fromJSON(file.metadata["clipit.config"] ?? "")
        XCTAssertEqual(stored.model.initVision, "models/vision.safetensors")
        XCTAssertEqual(stored.data.train, RunInputs.absolutePath(data.train))
        let inputs = try JSONDecoder().decode([RecordedInput].self, from: Data((file.metadata["clipit.inputs"] ?? "").utf8))
        let vision = try XCTUnwrap(inputs.first { $0.key == "model.init_vision" })
        XCTAssertEqual(vision.files.map(\.name), ["vision.safetensors"])
        XCTAssertEqual(vision.files.first?.bytes, try manager.attributesOfItem(atPath: run + "/models/vision.safetensors")[.size] as? Int)
        XCTAssertEqual(inputs.first { $0.key == "data.train" }?.files, [], "data inputs are not fingerprinted")
    }

    /// Train 5 steps, move the run folder (with its model file inside), evaluate and resume
    /// it from the new place: the final weights, optimiser state and stored configuration
    /// equal an uninterrupted run's, bit for bit (only the recorded absolute paths differ).
    func testAMovedRunFolderEvaluatesAndResumesExactly() throws {
        let whole = data.directory + "/whole", first = data.directory + "/first", moved = data.directory + "/elsewhere/run"
        for run in [whole, first] {
            try manager.createDirectory(atPath: run, withIntermediateDirectories: true)
            try writeVisionTower(to: run + "/vision.safetensors")
        }
        let full = try train(whole, initPath: whole + "/vision.safetensors")
        _ = try train(first, initPath: first + "/vision.safetensors", stopAfter: 5)
        try manager.createDirectory(atPath: data.directory + "/elsewhere", withIntermediateDirectories: true)
        try manager.moveItem(atPath: first, toPath: moved)
        XCTAssertFalse(manager.fileExists(atPath: first + "/vision.safetensors"))

        let (model, header) = try Checkpoint.loadModel(moved + "/last.safetensors")
        XCTAssertEqual(header.config.model.initVision, moved + "/vision.safetensors")
        XCTAssertEqual(model.store.frozenCount > 0, true)

        var resumed = header.config
        resumed.train.stopAfterSteps = 0
        let second = try Trainer(config: resumed, comm: SingleRankCommunicator(), outputDirectory: moved,
                                 resume: moved + "/last.safetensors", showProgress: false).run()
        XCTAssertEqual(second.steps, full.steps)
        XCTAssertEqual(try tensorBits(whole + "/last.safetensors"), try tensorBits(moved + "/last.safetensors"))
        let a = try SafeTensorsFile(path: whole + "/last.safetensors").metadata
        let b = try SafeTensorsFile(path: moved + "/last.safetensors").metadata
        for key in ["clipit.config", "clipit.state", "clipit.frozen_checksum"] { XCTAssertEqual(a[key], b[key], key) }
    }

    func testAMissingOrChangedModelInputIsNamedByItsKey() throws {
        let run = data.directory + "/run", tower = data.directory + "/outside/vision.safetensors"
        try manager.createDirectory(atPath: data.directory + "/outside", withIntermediateDirectories: true)
        try writeVisionTower(to: tower)
        _ = try train(run, initPath: tower)

        try writeVisionTower(to: tower, seed: 8)   // same names and shapes, other weights
        XCTAssertThrowsError(try Checkpoint.loadModel(run + "/last.safetensors")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("model.init_vision") && text.contains("is not what the run was trained with"), text)
        }
        try manager.removeItem(atPath: tower)
        XCTAssertThrowsError(try Checkpoint.loadModel(run + "/last.safetensors")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("model.init_vision '\(tower)' not found (tried '\(tower)')"), text)
        }
    }

    /// A CLIP text tower folder inside the run folder: after moving the run, the checkpoint's
    /// tokenizer is rebuilt from the moved folder (its files matched by name, size, CRC-32).
    func testAMovedRunFindsItsTokenizerFolder() throws {
        let run = data.directory + "/run", moved = data.directory + "/moved"
        try manager.createDirectory(atPath: run, withIntermediateDirectories: true)
        try manager.copyItem(atPath: try PretrainedFolderFixtures.path("hf_clip"), toPath: run + "/clip")
        let config = try data.config(overrides: ["model.init_text=\(run)/clip", "train.max_steps=2",
                                                 "train.validations_per_epoch=1"])
        _ = try Trainer(config: config, comm: SingleRankCommunicator(), outputDirectory: run, showProgress: false).run()
        try manager.moveItem(atPath: run, toPath: moved)

        let (model, header) = try Checkpoint.loadModel(moved + "/best.safetensors")
        XCTAssertEqual(header.config.model.initText, moved + "/clip")
        let encoding = try makeTextEncoding(stateJSON: try XCTUnwrap(header.tokenizerState))
        XCTAssertEqual((encoding as? CLIPTextEncoding)?.directory, moved + "/clip")
        let original = try PretrainedModel(directory: try PretrainedFolderFixtures.path("hf_clip")).makeTokenizer()
        XCTAssertEqual(encoding.encode("tumour glands with atypia"), original.tokenize("tumour glands with atypia"))
        XCTAssertEqual(model.classes, 3)
    }
}
