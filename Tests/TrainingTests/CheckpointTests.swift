@testable import DataParallel
@testable import Datasets
import Distributed
@testable import Evaluation
import Formats
import Foundation
@testable import Import
@testable import Kernels
@testable import Model
@testable import Retrieval
@testable import Training
import XCTest

final class CheckpointTests: XCTestCase {
    var data: TinyTrainingData!

    override func setUpWithError() throws { data = try TinyTrainingData() }
    override func tearDown() { data.remove() }

    func testRoundTripOfWeightsOptimiserAndHeader() throws {
        let config = try data.config(overrides: ["train.max_steps=3"])
        let out = data.directory + "/run"
        let trainer = try Trainer(config: config, comm: SingleRankCommunicator(), outputDirectory: out, showProgress: false)
        _ = try trainer.run()
        let path = out + "/last.safetensors"
        let (file, header) = try Checkpoint.open(path)
        XCTAssertEqual(header.config, config)
        XCTAssertEqual(header.state, trainer.state)
        XCTAssertEqual(header.classNames, TinyTrainingData.classNames)
        XCTAssertEqual(header.optimizerStep, 3)
        XCTAssertNotNil(header.tokenizerState)
        XCTAssertEqual(file.metadata["clipit.frozen_saved"], "false")
        // Only trainable parameters (and the optimiser) are stored.
        let store = trainer.model.store
        let stored = Set(file.names.filter { !$0.hasPrefix("optimizer.") })
        XCTAssertEqual(stored, Set(store.trainableParameters.map(\.name)))
        XCTAssertEqual(try file.entry("optimizer.exp_avg").count, store.trainableCount)

        let (model, _) = try Checkpoint.loadModel(path)
        XCTAssertEqual(model.store.trainable.array.map(\.bitPattern), store.trainable.array.map(\.bitPattern))
        XCTAssertEqual(model.store.frozen.array.map(\.bitPattern), store.frozen.array.map(\.bitPattern))
        XCTAssertFalse(model.isTraining)
        // No temporary files are left beside the checkpoints.
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.contains(".tmp") }
        XCTAssertEqual(leftovers, [])
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/summary.json"))
        let yaml = try String(contentsOfFile: out + "/config.yaml", encoding: .utf8)
        XCTAssertEqual(try TrainingConfig.resolve(yaml: yaml), config)
    }

    func testFullFineTuningAndSaveFrozenStoreEverything() throws {
        let config = try data.config(method: "unimodal-lora", overrides: ["train.max_steps=1", "train.save_frozen=true"])
        let out = data.directory + "/frozen"
        let trainer = try Trainer(config: config, comm: SingleRankCommunicator(), outputDirectory: out, showProgress: false)
        _ = try trainer.run()
        let (file, _) = try Checkpoint.open(out + "/last.safetensors")
        XCTAssertEqual(file.metadata["clipit.frozen_saved"], "true")
        XCTAssertEqual(Set(file.names.filter { !$0.hasPrefix("optimizer.") }), Set(trainer.model.store.parameters.map(\.name)))
    }

    func testFrozenWeightsThatDoNotComeBackAreRefused() throws {
        let config = try data.config(method: "unimodal-lora", overrides: ["train.max_steps=1"])
        let out = data.directory + "/check"
        let trainer = try Trainer(config: config, comm: SingleRankCommunicator(), outputDirectory: out, showProgress: false)
        _ = try trainer.run()
        // A model built from another seed has other frozen weights: loading must refuse.
        var other = config
        other.seed = 99
        let model = try makeModel(other, classes: 3)
        let (file, _) = try Checkpoint.open(out + "/last.safetensors")
        XCTAssertThrowsError(try Checkpoint.loadWeights(file, into: model)) {
            XCTAssertTrue("\($0)".contains("frozen weights"), "\($0)")
        }
        // A model of another architecture lacks parameters.
        let clipit = try makeModel(try data.config(method: "clipit"), classes: 3)
        XCTAssertThrowsError(try Checkpoint.loadWeights(file, into: clipit))
    }

    /// Pretrained tower files are needed to rebuild frozen weights, unless the checkpoint
    /// stores them; the loaded frozen weights are those of the file, not of the seed.
    func testInitialTowerFilesAndSavedFrozenWeights() throws {
        let pretrained = try makeModel(try data.config(method: "unimodal", overrides: ["seed=7"]), classes: 3)
        let initPath = data.directory + "/vision-init.safetensors"
        var writer = SafeTensorsWriter()
        for p in pretrained.store.parameters where p.name.hasPrefix("vision.") {
            writer.add(p.name, shape: p.shape, pointer: UnsafePointer(p.value), count: p.count)
        }
        try writer.write(to: initPath)
        let expected = pretrained.store.parameter(named: "vision.blocks.0.attn.qkv.weight")!
        let expectedBits = (0..<expected.count).map { expected.value[$0].bitPattern }

        for saveFrozen in [false, true] {
            let out = data.directory + "/init-\(saveFrozen)"
            let config = try data.config(method: "unimodal-lora", overrides: [
                "train.max_steps=1", "model.init_vision=\(initPath)", "train.save_frozen=\(saveFrozen)"])
            _ = try Trainer(config: config, comm: SingleRankCommunicator(), outputDirectory: out, showProgress: false).run()
            let (model, _) = try Checkpoint.loadModel(out + "/last.safetensors")
            let loaded = model.store.parameter(named: "vision.blocks.0.attn.qkv.weight")!
            XCTAssertEqual((0..<loaded.count).map { loaded.value[$0].bitPattern }, expectedBits)
        }
        try FileManager.default.removeItem(atPath: initPath)
        XCTAssertNoThrow(try Checkpoint.loadModel(data.directory + "/init-true/last.safetensors"))
        XCTAssertThrowsError(try Checkpoint.loadModel(data.directory + "/init-false/last.safetensors")) {
            XCTAssertTrue("\($0)".contains("vision-init.safetensors"), "\($0)")
        }
    }

    func testNotACheckpoint() throws {
        let path = data.directory + "/plain.safetensors"
        var writer = SafeTensorsWriter()
        writer.add("x", shape: [2], floats: [1, 2])
        try writer.write(to: path)
        XCTAssertThrowsError(try Checkpoint.open(path)) { XCTAssertTrue("\($0)".contains("not a clipit checkpoint")) }
    }
}
