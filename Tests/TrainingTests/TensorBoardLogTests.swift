@testable import DataParallel
import Distributed
import Formats
import Foundation
import ImageDecoding
import TestSupport
@testable import Training
import XCTest

/// The TensorBoard event files a training run writes beside metrics.jsonl
/// (RUNDIR/tensorboard), read back with `TensorBoardEventReader`.
final class TensorBoardLogTests: XCTestCase {
    var data: TinyTrainingData!

    override func setUpWithError() throws { data = try TinyTrainingData() }
    override func tearDown() { data.remove() }

    /// Every event of every file of `run`'s tensorboard folder, files in name order.
    func events(_ run: String) throws -> (files: [String], events: [TensorBoardEvent]) {
        let files = TensorBoardEventWriter.eventFiles(in: run + "/tensorboard")
        return (files, try files.flatMap { try TensorBoardEventReader.read(path: $0) })
    }

    /// (tag, step) → the scalars logged, in order.
    func scalars(_ events: [TensorBoardEvent]) -> [String: [Int: [Float]]] {
        var found: [String: [Int: [Float]]] = [:]
        for event in events {
            for value in event.values { if let x = value.scalar { found[value.tag, default: [:]][event.step, default: []].append(x) } }
        }
        return found
    }

    /// The records of a run's metrics.jsonl.
    func records(_ run: String) throws -> [[String: Any]] {
        try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            .map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    }

    /// Asserts that every number of every record of metrics.jsonl is in `events` once, as
    /// "<train|val>/<key>" at the record's step, equal after rounding to Float; returns how
    /// many were checked.
    @discardableResult
    func assertMirrorsMetrics(_ run: String, _ events: [TensorBoardEvent], file: StaticString = #filePath,
                              line: UInt = #line) throws -> Int {
        let found = scalars(events)
        var checked = 0
        for record in try records(run) {
            let step = record["step"] as! Int, prefix = record["type"] as! String == "step" ? "train" : "val"
            for (key, value) in record where key != "step" {
                guard !(value is Bool), let number = (value as? Double) ?? (value as? Int).map(Double.init) else { continue }
                XCTAssertEqual(found[prefix + "/" + key]?[step], [Float(number)], "\(prefix)/\(key) at step \(step)",
                               file: file, line: line)
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 0, file: file, line: line)
        return checked
    }

    func testTrainingWritesEveryStepValidationAndTheConfusionMatrix() throws {
        let config = try data.config(overrides: ["train.validations_per_epoch=3", "train.max_steps=7"])
        let out = data.directory + "/run"
        _ = try Trainer(config: config, comm: SingleRankCommunicator(), outputDirectory: out, showProgress: false).run()

        let (files, events) = try events(out)
        XCTAssertEqual(files.count, 1)
        XCTAssertTrue((files[0] as NSString).lastPathComponent.hasPrefix("events.out.tfevents."), files[0])
        XCTAssertEqual(events.first?.payload, .fileVersion("brain.Event:2"))
        XCTAssertTrue(events.allSatisfy { $0.wallTime > 1.5e9 }, "wall times are Unix times")

        // Every step's loss is metrics.jsonl's, and so is every other number of every record.
        let found = scalars(events)
        let losses = try stepLosses(out)
        XCTAssertEqual(losses.count, 7)
        XCTAssertEqual((1...7).map { found["train/loss"]?[$0] ?? [] }, losses.map { [Float($0)] })
        try assertMirrorsMetrics(out, events)
        for tag in ["train/ce", "train/distill", "train/lr", "train/grad_norm", "train/images_per_s", "train/text_cos",
                    "val/balanced_accuracy", "val/accuracy", "val/macro_f1", "val/macro_auroc", "val/loss"] {
            XCTAssertNotNil(found[tag], tag)
        }
        XCTAssertEqual(found["val/balanced_accuracy"].map { $0.keys.sorted() }, [2, 4, 5, 7])
        XCTAssertNil(found["train/step"])
        XCTAssertNil(found["val/best"], "booleans are not scalars")

        // The last validation's confusion matrix: 3 classes, 9 samples (one-digit counts).
        let images = events.flatMap { event in event.values.compactMap { v in v.image.map { (event.step, v.tag, $0) } } }
        XCTAssertEqual(images.count, 1)
        let (step, tag, image) = try XCTUnwrap(images.first)
        XCTAssertEqual(step, 7)
        XCTAssertEqual(tag, "val/confusion_matrix")
        XCTAssertEqual(image.colorspace, 3)
        let side = 3 * (24 + 1) + 1
        XCTAssertEqual([image.width, image.height], [side, side])
        let png = try image.encoded.withUnsafeBytes { try ImageDecoder.decode($0, path: "val/confusion_matrix") }
        XCTAssertEqual([png.width, png.height, Int(image.encoded[25])], [side, side, 2])   // IHDR colour type 2: RGB
    }

    /// A run killed after its checkpoint at step 4 had logged steps 5 and 6 and half a
    /// record; resumed, every step is in the folder once, with the resumed run's values.
    func testResumedRunAddsAFileWithoutDuplicatingSteps() throws {
        var config = try data.config(overrides: ["train.validations_per_epoch=1"])
        config.train.stopAfterSteps = 4
        let out = data.directory + "/resumed"
        _ = try Trainer(config: config, comm: SingleRankCommunicator(), outputDirectory: out, showProgress: false).run()
        let first = try XCTUnwrap(TensorBoardEventWriter.eventFiles(in: out + "/tensorboard").first)
        let orphans = [5, 6].flatMap { step in
            TFRecord.frame(TensorBoardEvent(wallTime: 1.7e9, step: step, payload: .summary([
                .scalar("train/loss", -1), .scalar("train/orphan", 1)])).encoded())
        }
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: first))
        handle.seekToEndOfFile()
        handle.write(Data(orphans.dropLast(5)))   // steps 5 and 6, the last record cut short
        try handle.close()
        XCTAssertThrowsError(try TensorBoardEventReader.read(path: first))

        var resumed = try Checkpoint.open(out + "/last.safetensors").header.config
        resumed.train.stopAfterSteps = 0
        _ = try Trainer(config: resumed, comm: SingleRankCommunicator(), outputDirectory: out,
                        resume: out + "/last.safetensors", showProgress: false).run()
        let (files, events) = try events(out)
        XCTAssertEqual(files.count, 2, "a resumed run adds an event file")
        XCTAssertEqual(files[0], first)
        let found = scalars(events)
        XCTAssertNil(found["train/orphan"], "what the killed run logged after its checkpoint is dropped")
        XCTAssertEqual(found["train/loss"].map { $0.keys.sorted() }, Array(1...10))
        try assertMirrorsMetrics(out, events)   // each value once, equal to metrics.jsonl

        // Started afresh in the same folder (--overwrite): the old event files go.
        _ = try Trainer(config: try data.config(overrides: ["train.max_steps=2"]), comm: SingleRankCommunicator(),
                        outputDirectory: out, showProgress: false, overwrite: true).run()
        let (filesAfresh, eventsAfresh) = try self.events(out)
        XCTAssertEqual(filesAfresh.count, 1)
        XCTAssertEqual(scalars(eventsAfresh)["train/loss"].map { $0.keys.sorted() }, [1, 2])
    }

    /// The mapping of records to tags, on the records retriever pretraining writes.
    func testRecordsBecomeScalarsTaggedByTypeAndKey() throws {
        let run = data.directory + "/pretrain"
        try FileManager.default.createDirectory(atPath: run, withIntermediateDirectories: true)
        let log = try MetricsLog(path: run + "/metrics.jsonl", enabled: true, truncate: true)
        try log.write(["type": "step", "step": 3, "epoch": 0, "loss": 2.5, "lr": MetricsLog.number(Float(1e-4)),
                       "grad_norm": MetricsLog.number(Float.nan), "pairs_per_s": 120.0, "ranks": 2, "logit_scale": 2.0])
        try log.write(["type": "val", "step": 3, "epoch": 0, "top1": 0.5, "top5": 0.75, "text_to_image_top1": 0.25,
                       "label_match_top1": 0.625, "pairs": 16, "best": true, "note": "text"])
        try MetricsLog(path: run + "/other.jsonl", enabled: false, truncate: true).write(["type": "step", "step": 1, "loss": 1.0])
        let (files, events) = try events(run)
        XCTAssertEqual(files.count, 1, "a disabled log writes no event file")
        XCTAssertEqual(events.count, 3)
        XCTAssertEqual(events[1].step, 3)
        XCTAssertEqual(events[1].values, [.scalar("train/epoch", 0), .scalar("train/logit_scale", 2), .scalar("train/loss", 2.5),
                                          .scalar("train/lr", 1e-4), .scalar("train/pairs_per_s", 120),
                                          .scalar("train/ranks", 2)])
        XCTAssertEqual(events[2].values.map(\.tag), ["val/epoch", "val/label_match_top1", "val/pairs", "val/text_to_image_top1",
                                                     "val/top1", "val/top5"])
    }
}
