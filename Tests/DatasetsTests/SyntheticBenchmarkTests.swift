@testable import Datasets
@testable import Formats
import Foundation
import Kernels
import TestSupport
import XCTest

final class SyntheticBenchmarkTests: XCTestCase {
    let tiny = SyntheticBenchmarkConfig.preset("tiny")!

    func files(_ dir: String) -> [String: [UInt8]] {
        var out: [String: [UInt8]] = [:]
        for name in try! FileManager.default.contentsOfDirectory(atPath: dir) { out[name] = readBytes(dir + "/" + name) }
        return out
    }

    func testSameSeedSameBytesDifferentSeedDiffers() throws {
        let root = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        _ = try SyntheticBenchmark.generate(config: tiny, seed: 3, preset: "tiny", directory: root + "/a", threads: 1)
        _ = try SyntheticBenchmark.generate(config: tiny, seed: 3, preset: "tiny", directory: root + "/b", threads: 3)
        _ = try SyntheticBenchmark.generate(config: tiny, seed: 4, preset: "tiny", directory: root + "/c")
        let (a, b, c) = (files(root + "/a"), files(root + "/b"), files(root + "/c"))
        XCTAssertEqual(a.keys.sorted(), ["manifest.json", "paired.cds", "paired.jsonl", "reports.jsonl", "test.cds", "train.cds", "val.cds"])
        XCTAssertEqual(a, b, "the thread count must not change a byte")
        for name in ["train.cds", "val.cds", "test.cds", "paired.cds", "paired.jsonl", "reports.jsonl"] {
            XCTAssertNotEqual(a[name], c[name], name)
        }
    }

    func testContentsBalanceAndAlignment() throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try SyntheticBenchmark.generate(config: tiny, seed: 0, preset: "tiny", directory: dir)
        let classes = SyntheticTaxonomy.classNames
        for (name, count) in [("train", 24), ("val", 12), ("test", 12), ("paired", 48)] {
            let file = try DatasetFile(path: dir + "/\(name).cds")
            XCTAssertEqual(file.count, count)
            XCTAssertEqual([file.height, file.width, file.channels], [32, 32, 3])
            XCTAssertEqual(file.classNames, classes)
            XCTAssertEqual(file.split, name)
            var perClass = [Int](repeating: 0, count: classes.count)
            for label in file.labels { perClass[Int(label)] += 1 }
            XCTAssertLessThanOrEqual(perClass.max()! - perClass.min()!, 1, "\(name): \(perClass)")
            let subtypes = try XCTUnwrap(file.info.attributes["subtype"])
            for i in 0..<count { XCTAssertLessThan(subtypes[i], SyntheticTaxonomy.subtypeNames[file.label(at: i)].count) }
            // Images are not blank and not all alike.
            let first = Array(file.imageBytes(at: 0)), second = Array(file.imageBytes(at: 1))
            XCTAssertNotEqual(first, second)
            XCTAssertGreaterThan(Set(first).count, 20)
        }
        let reports = try ReportCorpus(path: dir + "/reports.jsonl", classNames: classes)
        XCTAssertEqual(reports.count, 40)
        var perClass = [Int](repeating: 0, count: classes.count)
        for label in reports.labels { perClass[label!] += 1 }
        XCTAssertEqual(perClass, [10, 10, 10, 10])
        // Paired reports are aligned with paired images by index and describe their class.
        let paired = try DatasetFile(path: dir + "/paired.cds")
        let pairedReports = try ReportCorpus(path: dir + "/paired.jsonl", classNames: classes)
        XCTAssertEqual(pairedReports.count, paired.count)
        XCTAssertEqual(pairedReports.ids, paired.ids)
        XCTAssertEqual(pairedReports.labels.map { $0! }, paired.labels.map(Int.init))
        let vocabulary = ["mucosa", "adenocarcinoma", "stroma", "lymph"]
        for i in 0..<paired.count {
            let text = pairedReports.texts[i].lowercased()
            let subtype = paired.info.attributes["subtype"]![i]
            XCTAssertTrue(text.contains(vocabulary[paired.label(at: i)]) || (paired.label(at: i) == 2 && text.contains("fibr")), text)
            if paired.label(at: i) == 1 {
                XCTAssertTrue(text.contains(["well", "moderately", "poorly"][subtype]), text)
            }
            // Cleaning removes the markers and keeps the diagnosis.
            let cleaned = ReportCleaning.clean(pairedReports.texts[i])
            XCTAssertFalse(cleaned.lowercased().contains("redacted"))
            XCTAssertFalse(cleaned.contains("*") || cleaned.contains("_") || cleaned.contains("#@!"))
        }
        let manifest = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(readBytes(dir + "/manifest.json"))) as? [String: Any])
        XCTAssertEqual(manifest["seed"] as? Int, 0)
        XCTAssertEqual(manifest["classes"] as? [String], classes)
        XCTAssertEqual((manifest["files"] as? [Any])?.count, 6)
    }

    /// `unlabeledCount` adds unlabeled.cds and a manifest entry and changes no other byte;
    /// the pool is unlabelled, rendered like training images but none of theirs.
    func testUnlabeledPoolLeavesEveryOtherFileUnchanged() throws {
        let root = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        var withPool = tiny
        withPool.unlabeledCount = 10
        _ = try SyntheticBenchmark.generate(config: tiny, seed: 2, preset: "tiny", directory: root + "/plain", threads: 2)
        let output = try SyntheticBenchmark.generate(config: withPool, seed: 2, preset: "tiny", directory: root + "/pool",
                                                     threads: 2)
        let (plain, pool) = (files(root + "/plain"), files(root + "/pool"))
        XCTAssertEqual(pool.keys.sorted(), (plain.keys + ["unlabeled.cds"]).sorted())
        for name in plain.keys where name != "manifest.json" { XCTAssertEqual(plain[name], pool[name], name) }
        XCTAssertEqual(output.files.first { $0.name == "unlabeled.cds" }?.labelled, false)

        let file = try DatasetFile(path: root + "/pool/unlabeled.cds")
        XCTAssertFalse(file.isLabelled)
        XCTAssertEqual(file.count, 10)
        XCTAssertEqual(file.split, "unlabeled")
        XCTAssertEqual([file.height, file.width, file.channels], [32, 32, 3])
        XCTAssertEqual(file.classNames, SyntheticTaxonomy.classNames)
        XCTAssertEqual(file.labels, [Int32](repeating: -1, count: 10))
        XCTAssertEqual(file.info.attributes.keys.sorted(), ["slide"], "no latent subtype: nothing tells the class")
        XCTAssertEqual(file.ids, (0..<10).map { "unlabeled-" + SyntheticBenchmark.pad($0) })
        var others = Set<[UInt8]>()
        for name in ["train", "val", "test", "paired"] {
            let split = try DatasetFile(path: root + "/pool/\(name).cds")
            for i in 0..<split.count { others.insert(Array(split.imageBytes(at: i))) }
        }
        let images = (0..<file.count).map { Array(file.imageBytes(at: $0)) }
        XCTAssertEqual(Set(images).count, 10)
        XCTAssertTrue(Set(images).isDisjoint(with: others), "the pool's images are not those of another split")
        XCTAssertGreaterThan(Set(images[0]).count, 20, "not blank")

        let manifest = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(pool["manifest.json"]!)) as? [String: Any])
        let entries = try XCTUnwrap(manifest["files"] as? [[String: Any]])
        let entry = try XCTUnwrap(entries.first { $0["path"] as? String == "unlabeled.cds" })
        XCTAssertEqual(entry["count"] as? Int, 10)
        XCTAssertEqual(entry["kind"] as? String, "unlabelled images")
        XCTAssertNil(entry["class_counts"])
    }

    /// Difficulty changes the pixels only: labels, subtypes, slides and every report stay.
    func testDifficultyChangesImagesOnly() throws {
        let root = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        var hard = tiny
        hard.difficulty = 1
        _ = try SyntheticBenchmark.generate(config: tiny, seed: 5, preset: "tiny", directory: root + "/easy")
        _ = try SyntheticBenchmark.generate(config: hard, seed: 5, preset: "tiny", directory: root + "/hard")
        let (easy, difficult) = (files(root + "/easy"), files(root + "/hard"))
        XCTAssertEqual(easy["reports.jsonl"], difficult["reports.jsonl"])
        XCTAssertEqual(easy["paired.jsonl"], difficult["paired.jsonl"])
        for name in ["train", "val", "test", "paired"] {
            let a = try DatasetFile(path: root + "/easy/\(name).cds"), b = try DatasetFile(path: root + "/hard/\(name).cds")
            XCTAssertEqual(a.labels, b.labels, name)
            XCTAssertEqual(a.info.attributes, b.info.attributes, name)
            XCTAssertNotEqual(Array(a.imageBytes(at: 0)), Array(b.imageBytes(at: 0)), name)
        }
        let manifest = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(difficult["manifest.json"]!)) as? [String: Any])
        XCTAssertEqual(manifest["difficulty"] as? Double, 1)
    }

    /// Slide stain ranges: exactly the original ones at difficulty 0, twice as wide at 1.
    func testStainVariationWidensWithDifficulty() {
        func scales(_ difficulty: Float) -> [Float] {
            (0..<400).map { i -> Float in
                var g = RandomGenerator(seed: UInt64(i))
                return StainStyle(&g, difficulty: difficulty).hScale
            }
        }
        let easy = scales(0), hard = scales(1)
        XCTAssertTrue(easy.allSatisfy { (0.75...1.25).contains($0) })
        XCTAssertTrue(hard.allSatisfy { (0.5...1.5).contains($0) })
        XCTAssertGreaterThan(hard.filter { !(0.75...1.25).contains($0) }.count, 100, "about half should fall outside")
        // Difficulty 0 draws exactly as the original benchmark: six stain-vector factors,
        // then the hematoxylin scale from [0.75, 1.25].
        var g = RandomGenerator(seed: 9)
        for _ in 0..<6 { _ = g.uniform(0.85, 1.15) }
        let expected = g.uniform(0.75, 1.25)
        var h = RandomGenerator(seed: 9)
        XCTAssertEqual(StainStyle(&h, difficulty: 0).hScale, expected)
    }

    func testPNGMontage() throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try SyntheticBenchmark.generate(config: tiny, seed: 0, preset: "tiny", directory: dir)
        let image = SyntheticBenchmark.montage(try DatasetFile(path: dir + "/train.cds"), perClass: 3)
        XCTAssertEqual([image.width, image.height], [3 * 34 - 2, 4 * 34 - 2])
        let png = PNGWriter.encode(image.pixels, width: image.width, height: image.height, channels: 3)
        XCTAssertEqual(Array(png[0..<8]), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        XCTAssertEqual(Array(png[12..<16]), Array("IHDR".utf8))
        XCTAssertEqual(Array(png.suffix(8)), Array("IEND".utf8) + [0xAE, 0x42, 0x60, 0x82])
    }

    /// Generation speed of the demo preset: run with CLIPIT_SYNTH_BENCH=1 (prints the time).
    func testDemoPresetSpeed() throws {
        guard ProcessInfo.processInfo.environment["CLIPIT_SYNTH_BENCH"] == "1" else { throw XCTSkip("set CLIPIT_SYNTH_BENCH=1") }
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let output = try SyntheticBenchmark.generate(config: .preset("demo")!, seed: 0, preset: "demo", directory: dir)
        print("demo preset generated in \(output.seconds) s")
    }
}
