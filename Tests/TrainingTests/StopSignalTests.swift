@testable import DataParallel
import Distributed
import Foundation
import Model
import TestSupport
@testable import Training
import XCTest

/// Graceful preemption inside the library: the stop vote rides in the step's reduction,
/// and a stopped trainer leaves a checkpoint of the exact step it stopped at.
final class StopSignalTests: XCTestCase {
    func testAStopVoteOnOneRankStopsEveryRankAfterTheSameStep() throws {
        let outcomes = try ThreadRankCommunicator.run(size: 3) { comm -> [Bool] in
            let store = ParameterStore()
            _ = store.declare("w", shape: [2], region: .trainable, initializer: .ones)
            store.allocate(seed: 1)
            let signals = StopSignals(handlingSignals: false)
            let step = DataParallelStep(comm: comm, store: store, optimizer: SGD(parameterCount: 2),
                                        schedule: .constant(0.1), gradientClip: 0, dropoutSeed: 0,
                                        divergenceHint: "", stopSignals: signals)
            var stops: [Bool] = []
            for k in 0..<3 {
                if k == 1 && comm.rank == 2 { signals.request(SIGUSR1) }
                stops.append(try step.run(step: k, firstGlobalRow: 0) { _ in LossBreakdown(total: 1, ce: 1, distill: 0) }
                    .stopRequested)
            }
            return stops
        }
        XCTAssertEqual(outcomes, Array(repeating: [false, true, true], count: 3))
    }

    func testAStoppedRunCheckpointsItsStepAndResumesToTheSameEnd() throws {
        let data = try TinyTrainingData()
        defer { data.remove() }
        let config = try data.config(overrides: ["train.validations_per_epoch=0"])
        let whole = data.directory + "/whole", stopped = data.directory + "/stopped"
        let full = try Trainer(config: config, comm: SingleRankCommunicator(), outputDirectory: whole,
                               showProgress: false).run()
        let signals = StopSignals(handlingSignals: false)
        signals.request()
        let first = try Trainer(config: config, comm: SingleRankCommunicator(), outputDirectory: stopped,
                                showProgress: false, stopSignals: signals).run()
        XCTAssertEqual(first.steps, 1, "the signal arrived before the first step: stop after it")
        XCTAssertEqual(first.stoppedBySignal, SIGTERM)
        XCTAssertEqual(try Checkpoint.open(stopped + "/last.safetensors").header.state.step, 1)
        XCTAssertThrowsError(try Trainer(config: config, comm: SingleRankCommunicator(), outputDirectory: stopped,
                                         showProgress: false)) {
            XCTAssertTrue("\($0)".contains("already holds a run"), "\($0)")
        }
        let resumed = try Trainer(config: config, comm: SingleRankCommunicator(), outputDirectory: stopped,
                                  resume: stopped + "/last.safetensors", showProgress: false).run()
        XCTAssertEqual(resumed.steps, full.steps)
        XCTAssertNil(resumed.stoppedBySignal)
        XCTAssertEqual(try tensorBits(stopped + "/last.safetensors"), try tensorBits(whole + "/last.safetensors"))
        XCTAssertEqual(try stepLosses(stopped), try stepLosses(whole), "every step logged once")
    }

    func testMetricsLogTrimKeepsRecordsUpToTheCheckpointStep() throws {
        let path = NSTemporaryDirectory() + "clipit-trim-\(UUID().uuidString).jsonl"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let lines = [#"{"type":"step","step":1}"#, #"{"type":"step","step":2}"#, #"{"type":"val","step":2}"#,
                     #"{"type":"step","step":3}"#, #"{"type":"step","step":4}"#]
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        try MetricsLog.trim(path: path, toStep: 2)
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), lines.prefix(3).joined(separator: "\n") + "\n")
    }
}

/// A run folder is used by one job at a time; a lock left by a dead process is taken over.
final class RunFolderLockTests: XCTestCase {
    func testTheLockIsExclusiveAndAStaleOneIsTakenOver() throws {
        let directory = NSTemporaryDirectory() + "clipit-lock-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try RunFolderLock(directory: directory)
        XCTAssertThrowsError(try RunFolderLock(directory: directory)) {
            XCTAssertTrue("\($0)".contains("in use by process \(localHostName()) \(getpid())"), "\($0)")
        }
        first.release()
        XCTAssertFalse(FileManager.default.fileExists(atPath: first.path))
        // A lock of a process that no longer exists on this host.
        try "\(localHostName()) 2147483646\n".write(toFile: first.path, atomically: true, encoding: .utf8)
        let second = try RunFolderLock(directory: directory)
        XCTAssertEqual(try String(contentsOfFile: second.path, encoding: .utf8), "\(localHostName()) \(getpid())\n")
        // A lock from another host cannot be checked: refused.
        second.release()
        try "another-host 1\n".write(toFile: first.path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try RunFolderLock(directory: directory))
    }
}
