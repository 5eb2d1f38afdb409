@testable import DataParallel
import Distributed
import Foundation
import Formats
@testable import Model
@testable import Training
import XCTest

/// Non-finite values never pass silently: the step checks every reduced loss term and the
/// gradient norm before the update, validation checks its loss, loading checks weights.
final class NonFiniteTests: XCTestCase {
    private func makeStep() -> (DataParallelStep, Parameter) {
        let store = ParameterStore()
        let w = store.declare("w", shape: [3], region: .trainable, initializer: .ones)
        store.allocate(seed: 1)
        let step = DataParallelStep(comm: SingleRankCommunicator(), store: store, optimizer: SGD(parameterCount: 3),
                                    schedule: .constant(0.1), gradientClip: 1, dropoutSeed: 0,
                                    divergenceHint: "lower the learning rate")
        return (step, w)
    }

    func testTheStepRefusesANonFiniteLossTermOrGradientNormBeforeTheUpdate() throws {
        let (step, w) = makeStep()
        XCTAssertThrowsError(try step.run(step: 4, firstGlobalRow: 0) { _ in LossBreakdown(total: 1, ce: 1, distill: .nan) }) {
            XCTAssertTrue("\($0)".contains("distill"), "\($0)")
            XCTAssertTrue("\($0)".contains("step 5"), "\($0)")
            XCTAssertTrue("\($0)".contains("lower the learning rate"), "\($0)")
        }
        XCTAssertThrowsError(try step.run(step: 0, firstGlobalRow: 0) { _ in
            w.gradient![1] = .infinity
            return LossBreakdown(total: 1, ce: 1, distill: 0)
        }) { XCTAssertTrue("\($0)".contains("gradient norm"), "\($0)") }
        XCTAssertEqual(Array(UnsafeBufferPointer(start: w.value, count: 3)), [1, 1, 1], "no update after a non-finite gradient")
        try step.run(step: 0, firstGlobalRow: 0) { _ in
            w.gradient![0] = 1
            return LossBreakdown(total: 1, ce: 1, distill: 0)
        }
        XCTAssertLessThan(w.value[0], 1, "a finite step updates")
    }

    func testADivergingRunStopsWithAnErrorInsteadOfExitingNormally() throws {
        let data = try TinyTrainingData()
        defer { data.remove() }
        let config = try data.config(method: "unimodal-lora", overrides: ["optim.lr=1e30", "train.epochs=10"])
        XCTAssertThrowsError(try Trainer(config: config, comm: SingleRankCommunicator(),
                                         outputDirectory: data.directory + "/run", showProgress: false).run()) {
            let text = "\($0)"
            XCTAssertTrue(text.contains("became") && text.contains("optim.lr"), text)
        }
    }

    func testWithTheGuardOnAFiniteButExplodingLossStopsTheRun() throws {
        let data = try TinyTrainingData()
        defer { data.remove() }
        // lr 1e6 keeps the values finite on this model, so only the guard can stop it.
        let config = try data.config(method: "unimodal-lora",
                                     overrides: ["optim.lr=1e6", "train.epochs=2", "train.divergence_factor=10"])
        XCTAssertThrowsError(try Trainer(config: config, comm: SingleRankCommunicator(),
                                         outputDirectory: data.directory + "/run", showProgress: false).run()) {
            XCTAssertTrue("\($0)".contains("diverging"), "\($0)")
        }
    }

    func testTheDivergenceGuardStopsALossFarAboveItsRunningMedian() throws {
        var guardian = DivergenceGuard(factor: 3, window: 5)
        for loss: Float in [2, 1.9, 2.1, 2, 1.8] { try guardian.check(loss, step: 1) }
        XCTAssertNoThrow(try guardian.check(5.9, step: 6), "below 3× the median 2")
        XCTAssertThrowsError(try guardian.check(6.5, step: 7)) { XCTAssertTrue("\($0)".contains("step 7"), "\($0)") }
        var off = DivergenceGuard(factor: 0, window: 5)
        for _ in 0..<10 { try off.check(1, step: 1) }
        XCTAssertNoThrow(try off.check(1e30, step: 11), "factor 0 is off")
    }

    func testACheckpointWithNonFiniteWeightsIsRefusedOnLoad() throws {
        let data = try TinyTrainingData()
        defer { data.remove() }
        let out = data.directory + "/run"
        let config = try data.config(method: "unimodal-lora", overrides: ["train.max_steps=2", "train.validations_per_epoch=0"])
        _ = try Trainer(config: config, comm: SingleRankCommunicator(), outputDirectory: out, showProgress: false).run()
        let path = out + "/last.safetensors"
        _ = try Checkpoint.loadModel(path)
        // Rewrite one trainable tensor with a NaN, keeping everything else.
        let file = try SafeTensorsFile(path: path)
        var writer = SafeTensorsWriter(metadata: file.metadata)
        let poisoned = try XCTUnwrap(file.names.first { $0.contains("lora_A") })
        for name in file.names {
            let info = try file.info(name)
            if info.dtype == .f32 {
                var values = try file.floats(name)
                if name == poisoned { values[0] = .nan }
                writer.add(name, shape: info.shape, floats: values)
            } else {
                writer.add(name, shape: info.shape, int64s: try file.ints(name).map(Int64.init))
            }
        }
        try writer.write(to: out + "/poisoned.safetensors")
        XCTAssertThrowsError(try Checkpoint.loadModel(out + "/poisoned.safetensors")) {
            let text = "\($0)"
            XCTAssertTrue(text.contains("poisoned.safetensors") && text.contains("non-finite"), text)
        }
    }
}
