import Datasets
import Evaluation
import Formats
import Foundation
import Reporting
import Retrieval
import TestSupport
import XCTest

final class ReadersTests: XCTestCase {
    var dir = ""

    override func setUp() { dir = makeTemporaryDirectory(name) }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func write(_ text: String, _ path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }

    func testTrainingLogReadsStepsAndValidationsKeepingALaterRecordOfAStep() throws {
        let log = try TrainingLog(jsonLines: Data("""
            {"ce":1.5,"distill":0.5,"loss":2,"step":1,"type":"step"}
            {"ce":1.2,"distill":0.25,"loss":1.45,"step":2,"type":"step"}
            {"accuracy":0.5,"balanced_accuracy":0.55,"step":2,"type":"val"}
            {"type":"note","text":"ignored"}
            {"ce":1.1,"distill":0.2,"loss":1.3,"step":2,"type":"step"}
            {"balancedAccuracy":0.6,"step":4,"type":"val"}
            {"ce":1.0,"dist
            """.utf8), path: "metrics.jsonl")
        XCTAssertEqual(log.steps.map(\.step), [1, 2])
        XCTAssertEqual(log.steps[1].loss, 1.3, "the later record of step 2")
        XCTAssertEqual(log.curve(.distill).map(\.y), [0.5, 0.2])
        XCTAssertEqual(log.validations.map(\.balancedAccuracy), [0.55, 0.6], "snake_case and older camelCase")
        XCTAssertTrue(log.varies(.distill))
        XCTAssertFalse(try TrainingLog(jsonLines: Data("{\"distill\":0,\"step\":1,\"type\":\"step\"}\n".utf8),
                                       path: "m").varies(.distill))
    }

    func testTrainingLogNamesADamagedLine() {
        XCTAssertThrowsError(try TrainingLog(jsonLines: Data("{\"step\":1,\"type\":\"step\"}\nnot json\n{\"step\":2}\n".utf8),
                                             path: "runs/a/metrics.jsonl")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("runs/a/metrics.jsonl") && text.contains("line 2"), text)
        }
    }

    func testTestEvaluationReadsSnakeCaseAndOlderCamelCaseFiles() throws {
        let report = metricsReport(labels: [0, 0, 1, 1], predictions: [0, 1, 1, 1], names: ["a", "b"])
        var object = try JSONSerialization.jsonObject(with: try ProjectJSON.encoder(pretty: false).encode(report))
            as! [String: Any]
        let snake: [String: Any] = ["method": "clipit", "seed": 2, "step": 9, "metrics": object, "text_metrics": object,
                                    "omega": 0.25]
        try JSONSerialization.data(withJSONObject: snake).write(to: URL(fileURLWithPath: dir + "/new.json"))
        // The older file: camelCase keys everywhere below metrics.
        object["balancedAccuracy"] = object.removeValue(forKey: "balanced_accuracy")
        object["macroF1"] = object.removeValue(forKey: "macro_f1")
        object["confusionMatrix"] = object.removeValue(forKey: "confusion_matrix")
        object["perClass"] = object.removeValue(forKey: "per_class")
        object["classNames"] = object.removeValue(forKey: "class_names")
        object["sampleCount"] = object.removeValue(forKey: "sample_count")
        let camel: [String: Any] = ["method": "clipit", "seed": 2, "metrics": object, "textMetrics": object]
        try JSONSerialization.data(withJSONObject: camel).write(to: URL(fileURLWithPath: dir + "/old.json"))

        for name in ["new", "old"] {
            let evaluation = try TestEvaluation(path: dir + "/\(name).json")
            XCTAssertEqual(evaluation.metrics, report, name)
            XCTAssertEqual(evaluation.textMetrics, report, name)
            XCTAssertEqual(evaluation.metrics.balancedAccuracy, 0.75, name)
            XCTAssertEqual(evaluation.seed, 2)
        }
        XCTAssertEqual(try TestEvaluation(path: dir + "/new.json").omega, 0.25)
        try write("{\"metrics\":{\"accuracy\":1}}", dir + "/bad.json")
        XCTAssertThrowsError(try TestEvaluation(path: dir + "/bad.json")) { error in
            XCTAssertTrue("\(error)".contains("bad.json: not a `clipit eval --out` file (no metrics.sampleCount)"),
                          "\(error)")
        }
    }

    func testRunFoldersGroupBySeedSuffixInTheGivenOrder() throws {
        let report = metricsReport(labels: [0, 1], predictions: [0, 1], names: ["a", "b"])
        let metrics = String(decoding: try ProjectJSON.encoder(pretty: false).encode(report), as: UTF8.self)
        for (name, seed) in [("clipit-seed1", "1"), ("clipit-seed0", "0"), ("baseline", "null"), ("aaa-seed3", "null")] {
            try write("{\"method\":\"m\",\"seed\":\(seed),\"metrics\":\(metrics)}", "\(dir)/runs/\(name)/test.json")
        }
        try write("{\"ce\":1,\"loss\":1,\"step\":1,\"type\":\"step\"}\n", "\(dir)/runs/clipit-seed0/metrics.jsonl")
        try FileManager.default.createDirectory(atPath: dir + "/runs/unevaluated-seed0", withIntermediateDirectories: true)
        let groups = try RunFolders.read(dir + "/runs", order: ["clipit", "missing"], readLogs: true)
        XCTAssertEqual(groups.map(\.name), ["clipit", "aaa", "baseline"])
        XCTAssertEqual(groups[0].runs.map(\.seed), [0, 1])
        XCTAssertEqual(groups[0].runs.map { $0.log?.steps.count }, [1, nil])
        XCTAssertEqual(groups[1].runs[0].seed, 3, "seed from the folder name when test.json has none")
        XCTAssertEqual(RunFolders.splitSeed("a-seed-x").group, "a-seed-x")
        XCTAssertEqual(RunFolders.splitSeed("-seed2").group, "-seed2")
    }

    func testPairingFoldersReadSummariesOrComputeThemFromPairsFiles() throws {
        // An older pairing-summary.json (camelCase keys), and a folder with pairs files only.
        let summary = labelledPairs().summary()
        var object = try JSONSerialization.jsonObject(with: try ProjectJSON.encoder(pretty: false).encode(summary))
            as! [String: Any]
        object["labelMatchRate"] = object.removeValue(forKey: "label_match_rate")
        object["imageCount"] = object.removeValue(forKey: "image_count")
        for key in ["distinct_reports", "label_matches", "labelled_pairs", "max_images_per_report", "max_score",
                    "mean_score", "median_score", "min_score", "report_count"] {
            let camel = key.split(separator: "_").enumerated()
                .map { $0.offset == 0 ? String($0.element) : $0.element.capitalized }.joined()
            object[camel] = object.removeValue(forKey: key)
        }
        try FileManager.default.createDirectory(atPath: dir + "/pairs/old", withIntermediateDirectories: true)
        try JSONSerialization.data(withJSONObject: ["splits": [object], "seconds": 1.5])
            .write(to: URL(fileURLWithPath: dir + "/pairs/old/pairing-summary.json"))
        try FileManager.default.createDirectory(atPath: dir + "/pairs/files", withIntermediateDirectories: true)
        try labelledPairs(split: "val").write(to: URL(fileURLWithPath: dir + "/pairs/files/val.pairs.jsonl"))
        try labelledPairs(split: "train").write(to: URL(fileURLWithPath: dir + "/pairs/files/train.pairs.jsonl"))
        try FileManager.default.createDirectory(atPath: dir + "/pairs/empty", withIntermediateDirectories: true)

        let pairings = try PairingFolders.read(dir + "/pairs")
        XCTAssertEqual(pairings.map(\.name), ["files", "old"])
        XCTAssertEqual(pairings[1].summaries, [summary])
        XCTAssertFalse(pairings[1].computedFromPairsFiles)
        XCTAssertEqual(pairings[0].summaries.map(\.split), ["train", "val"])
        XCTAssertEqual(pairings[0].summaries[0].labelMatchRate!, 4.0 / 6, accuracy: 1e-12)
        XCTAssertTrue(pairings[0].computedFromPairsFiles)
        XCTAssertEqual(pairings[0].strategy, "top1")
    }

    func testGalleryChoiceIsEvenlySpacedWithAQuarterOfMismatches() {
        var matches = [Bool?](repeating: true, count: 20)
        for i in [3, 7, 15] { matches[i] = false }
        matches[0] = nil
        // 2 of the 3 mismatches (⌊0·3/2⌋, ⌊1·3/2⌋ → 3, 7), then 6 of the 17 others at
        // positions 0, 2, 5, 8, 11, 14 → images 0, 2, 6, 10, 13, 17.
        XCTAssertEqual(RetrievalGallery.choose(count: 8, matches: matches), [0, 2, 3, 6, 7, 10, 13, 17])
        XCTAssertEqual(RetrievalGallery.choose(count: 8, matches: [Bool?](repeating: true, count: 20)),
                       [0, 2, 5, 7, 10, 12, 15, 17])
        XCTAssertEqual(RetrievalGallery.choose(count: 12, matches: [false, true, nil]), [0, 1, 2], "a small split: all")
        XCTAssertEqual(RetrievalGallery.choose(count: 0, matches: matches), [])
    }

    func testGalleryExamplesCarryImageReportScoreAndVerdict() throws {
        let dataset = try writeDataset(dir + "/test.cds")
        let examples = try RetrievalGallery.examples(pairs: labelledPairs(), pairsPath: "p", dataset: dataset,
                                                     corpus: galleryCorpus, corpusPath: "c", count: 6)
        XCTAssertEqual(examples.map(\.image), [0, 1, 2, 3, 4, 5])
        XCTAssertEqual(examples.map(\.labelsMatch), [true, false, true, true, false, true])
        XCTAssertEqual(examples[1].imageLabel, "normal")
        XCTAssertEqual(examples[1].reportLabel, "tumour")
        XCTAssertEqual(examples[1].reportID, "r2")
        XCTAssertEqual(examples[1].score, -0.1, accuracy: 1e-6)
        XCTAssertEqual(examples[1].reportExcerpt, "Adenocarcinoma, moderately differentiated. / Margins clear. / Third line.")
        XCTAssertEqual(Array(examples[0].thumbnailPNG.prefix(4)), [0x89, 0x50, 0x4E, 0x47])
        XCTAssertEqual(examples[0].thumbnailWidth, 4)

        let tooFew = ReportCorpus(ids: ["r0"], texts: ["x"])
        XCTAssertThrowsError(try RetrievalGallery.examples(pairs: labelledPairs(), pairsPath: "pairs/top1/test.pairs.jsonl",
                                                           dataset: dataset, corpus: tooFew, corpusPath: "reports.jsonl",
                                                           count: 2)) { error in
            XCTAssertTrue("\(error)".hasPrefix("pairs/top1/test.pairs.jsonl: indexes 4 reports, but reports.jsonl holds 1"),
                          "\(error)")
        }
    }

    func testExcerptKeepsTheFirstLinesAndCutsAtAWord() {
        XCTAssertEqual(RetrievalGallery.excerpt("a\n\n b \nc\nd", lines: 3), "a / b / c")
        let long = String(repeating: "word ", count: 100)
        let cut = RetrievalGallery.excerpt(long, characters: 42)
        XCTAssertEqual(cut, "word word word word word word word word…")
    }

    func testThumbnailShrinksByBlockMeans() {
        // 4×4 grey, maxSide 2 → factor 2: each output pixel the rounded mean of a 2×2 block.
        let pixels: [UInt8] = [0, 2, 10, 10,
                               4, 6, 10, 11,
                               100, 100, 0, 0,
                               100, 101, 0, 255]
        let (out, w, h) = pixels.withUnsafeBufferPointer {
            Thumbnail.shrink($0, height: 4, width: 4, channels: 1, maxSide: 2)
        }
        XCTAssertEqual([w, h], [2, 2])
        XCTAssertEqual(out, [3, 10, 100, 64])   // (0+2+4+6)/4, 41/4 → 10, 401/4 → 100, 255/4 → 64
        let same = pixels.withUnsafeBufferPointer { Thumbnail.shrink($0, height: 4, width: 4, channels: 1, maxSide: 4) }
        XCTAssertEqual(same.pixels, pixels)
    }
}
