@testable import Datasets
@testable import Formats
import Foundation
import TestSupport
import XCTest

final class DatasetFileTests: XCTestCase {
    let classNames = ["normal", "tumour", "stroma"]

    /// Writes `count` 4×5×3 images whose bytes encode (image, byte) and labels i % 3.
    func writeSample(_ path: String, count: Int = 7, ids: Bool = true) throws {
        let info = DatasetInfo(classNames: classNames, split: "train", source: "unit test",
                               ids: ids ? (0..<count).map { "item-\($0)" } : nil,
                               attributes: ["grade": (0..<count).map { $0 % 2 }],
                               metadata: ["seed": "42"])
        let writer = try DatasetWriter(path: path, height: 4, width: 5, channels: 3, count: count, info: info)
        for i in 0..<count {
            try writer.append(image: (0..<60).map { UInt8(truncatingIfNeeded: i * 61 + $0) }, label: i % 3)
        }
        try writer.finish()
    }

    func testRoundTrip() throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/a.cds"
        try writeSample(path)
        let file = try DatasetFile(path: path)
        XCTAssertEqual(file.count, 7)
        XCTAssertEqual([file.height, file.width, file.channels], [4, 5, 3])
        XCTAssertEqual(file.classNames, classNames)
        XCTAssertEqual(file.split, "train")
        XCTAssertEqual(file.info.source, "unit test")
        XCTAssertEqual(file.ids, (0..<7).map { "item-\($0)" })
        XCTAssertEqual(file.info.attributes["grade"], [0, 1, 0, 1, 0, 1, 0])
        XCTAssertEqual(file.info.metadata, ["seed": "42"])
        XCTAssertEqual(file.labels, [0, 1, 2, 0, 1, 2, 0])
        for i in 0..<7 {
            XCTAssertEqual(file.label(at: i), i % 3)
            XCTAssertEqual(Array(file.imageBytes(at: i)), (0..<60).map { UInt8(truncatingIfNeeded: i * 61 + $0) })
        }
        // Header fields, byte by byte, as docs/datasets.md describes them.
        let bytes = readBytes(path)
        XCTAssertEqual(Array(bytes[0..<8]), Array("CLIPITDS".utf8))
        XCTAssertEqual(bytes[8], 1)
        XCTAssertEqual(bytes[12], 64)
        XCTAssertEqual(bytes.count % 4, 0)
        // Without ids, and no temporary left behind.
        try writeSample(dir + "/b.cds", count: 0, ids: false)
        XCTAssertEqual(try DatasetFile(path: dir + "/b.cds").count, 0)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(), ["a.cds", "b.cds"])
    }

    func testUnverifiedOpenSkipsChecksumOnly() throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/a.cds"
        try writeSample(path)
        var bytes = readBytes(path)
        let file = try DatasetFile(path: path)
        bytes[file.count * 0 + 64 + 300] ^= 0xFF  // somewhere in the images
        writeBytes(path, bytes)
        XCTAssertNoThrow(try DatasetFile(path: path, verify: false))
        assertDatasetError(.checksumMismatch) { _ = try DatasetFile(path: path) }
    }

    func testCorruptionIsReported() throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/a.cds"
        try writeSample(path)
        let good = readBytes(path)

        // Any flipped byte fails the checksum (or an earlier structural check).
        for position in [70, 200, good.count - 40, good.count - 6, good.count - 1] {
            var bytes = good
            bytes[position] ^= 0x01
            writeBytes(path, bytes)
            assertDatasetError(.checksumMismatch, [path, "checksum mismatch (stored", "regenerate it"]) {
                _ = try DatasetFile(path: path)
            }
        }
        // Truncation, at several lengths.
        for length in [good.count - 1, good.count - 100, 70] {
            writeBytes(path, Array(good[0..<length]))
            assertDatasetError(.truncated, [path, "truncated"]) { _ = try DatasetFile(path: path) }
        }
        writeBytes(path, Array(good[0..<20]))
        assertDatasetError(.truncated, [path]) { _ = try DatasetFile(path: path) }
        // Trailing bytes.
        writeBytes(path, good + [0, 0, 0, 0])
        assertDatasetError(.sizeMismatch, ["wrong sizes"]) { _ = try DatasetFile(path: path) }
        // Bad magic.
        var bytes = good
        bytes[0] = UInt8(ascii: "X")
        writeBytes(path, bytes)
        assertDatasetError(.badMagic, [path, "bad magic"]) { _ = try DatasetFile(path: path) }
        writeBytes(path, [])
        assertDatasetError(.badMagic) { _ = try DatasetFile(path: path) }
        // Wrong version.
        bytes = good
        bytes[8] = 9
        writeBytes(path, bytes)
        assertDatasetError(.unsupportedVersion, ["version 9"]) { _ = try DatasetFile(path: path) }
        // Wrong sizes in the header (width changed: offsets no longer follow).
        bytes = good
        bytes[20] = 6
        writeBytes(path, bytes)
        assertDatasetError(.sizeMismatch, ["wrong sizes"]) { _ = try DatasetFile(path: path) }
        // Label out of range, with a valid checksum (as a buggy writer would produce).
        bytes = good
        let labelsOffset = Int(bytes[56]) | Int(bytes[57]) << 8 | Int(bytes[58]) << 16
        bytes[labelsOffset + 4 * 2] = 3
        let crc = crc32Update(0, bytes, count: bytes.count - 4)
        for k in 0..<4 { bytes[bytes.count - 4 + k] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(k))) }
        writeBytes(path, bytes)
        assertDatasetError(.labelOutOfRange, ["image 2 has label 3", "3 classes"]) { _ = try DatasetFile(path: path) }
        // Missing file.
        assertDatasetError(.io, [dir + "/missing.cds"]) { _ = try DatasetFile(path: dir + "/missing.cds") }
    }

    /// A version-1 file assembled byte by byte as docs/datasets.md lays it out, as files
    /// were written before unlabelled files existed (no "labelled" key): 2 images of
    /// 1×2×1, labels `labels`, JSON `json`.
    func handAssembled(json: String, classCount: UInt32, labels: [Int32]) -> [UInt8] {
        func u32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * UInt32($0))) } }
        func u64(_ v: Int) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        let text = Array(json.utf8), padded = (text.count + 7) & ~7
        let imagesOffset = 64 + padded, labelsOffset = (imagesOffset + 4 + 7) & ~7
        var bytes = Array("CLIPITDS".utf8) + u32(1) + u32(64) + u32(1) + u32(2) + u32(1) + u32(classCount)
        bytes += u64(2) + u64(text.count) + u64(imagesOffset) + u64(labelsOffset)
        bytes += text + [UInt8](repeating: 0x20, count: padded - text.count)
        bytes += [10, 20, 30, 40] + [UInt8](repeating: 0, count: labelsOffset - imagesOffset - 4)
        for label in labels { bytes += u32(UInt32(bitPattern: label)) }
        return bytes + u32(crc32Update(0, bytes, count: bytes.count))
    }

    func testFilesWithoutTheLabelledKeyReadAsLabelledAndAreStillWrittenSo() throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let old = handAssembled(json: #"{"class_names":["a","b"],"split":"test","source":"old"}"#, classCount: 2, labels: [1, 0])
        writeBytes(dir + "/old.cds", old)
        let file = try DatasetFile(path: dir + "/old.cds")
        XCTAssertTrue(file.isLabelled)
        XCTAssertEqual(file.labels, [1, 0])
        XCTAssertEqual([file.label(at: 0), file.label(at: 1)], [1, 0])
        XCTAssertEqual(Array(file.imageBytes(at: 1)), [30, 40])
        XCTAssertNoThrow(try file.requireLabels(for: "data.train"))
        // The writer still produces exactly these bytes for a labelled file.
        let writer = try DatasetWriter(path: dir + "/new.cds", height: 1, width: 2, channels: 1, count: 2,
                                       info: DatasetInfo(classNames: ["a", "b"], split: "test", source: "old"))
        try writer.append(image: [10, 20], label: 1)
        try writer.append(image: [30, 40], label: 0)
        try writer.finish()
        XCTAssertEqual(readBytes(dir + "/new.cds"), old)
    }

    func testUnlabelledRoundTrip() throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/pool.cds"
        let info = DatasetInfo(classNames: classNames, split: "unlabeled", source: "unit test", labelled: false,
                               ids: ["u0", "u1", "u2"], attributes: ["slide": [0, 0, 1]])
        let writer = try DatasetWriter(path: path, height: 4, width: 5, channels: 3, count: 3, info: info)
        assertDatasetError(.invalidArgument, [path, "append(image:)"]) {
            try writer.append(image: [UInt8](repeating: 0, count: 60), label: 0)
        }
        for i in 0..<3 { try writer.append(image: (0..<60).map { UInt8(truncatingIfNeeded: i * 61 + $0) }) }
        try writer.finish()

        let file = try DatasetFile(path: path)
        XCTAssertFalse(file.isLabelled)
        XCTAssertFalse(file.info.labelled)
        XCTAssertEqual(file.info, info)
        XCTAssertEqual(file.count, 3)
        XCTAssertEqual(file.classNames, classNames)
        XCTAssertEqual(file.labels, [-1, -1, -1])
        for i in 0..<3 {
            XCTAssertEqual(file.label(at: i), -1)
            XCTAssertEqual(Array(file.imageBytes(at: i)), (0..<60).map { UInt8(truncatingIfNeeded: i * 61 + $0) })
        }
        XCTAssertTrue(String(decoding: readBytes(path)[64..<200], as: UTF8.self)
            .hasPrefix(#"{"class_names":["normal","tumour","stroma"],"split":"unlabeled","source":"unit test","labelled":false,"#))
        // The uses that need labels refuse it, naming the file and what it can be.
        assertDatasetError(.unlabelled, [path, "holds unlabelled images", "cannot be data.train", "data.unlabeled",
                                         "prediction input"]) { try file.requireLabels(for: "data.train") }
        // A labelled writer takes no unlabelled image.
        let labelled = try DatasetWriter(path: dir + "/l.cds", height: 1, width: 1, channels: 1, count: 1,
                                         info: DatasetInfo(classNames: ["a"], split: "x", source: ""))
        assertDatasetError(.invalidArgument, ["append(image:label:)"]) { try labelled.append(image: [0]) }
    }

    func testNoLabelIsRefusedInALabelledFileAndOnlyItIsAcceptedInAnUnlabelledOne() throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/a.cds"
        writeBytes(path, handAssembled(json: #"{"class_names":["a","b"],"split":"x","source":""}"#, classCount: 2, labels: [0, -1]))
        assertDatasetError(.labelOutOfRange, [path, "image 1 has label -1", "2 classes", #""labelled": false"#]) {
            _ = try DatasetFile(path: path)
        }
        writeBytes(path, handAssembled(json: #"{"class_names":["a","b"],"split":"x","source":"","labelled":true}"#,
                                       classCount: 2, labels: [-1, 1]))
        assertDatasetError(.labelOutOfRange, [path, "image 0 has label -1"]) { _ = try DatasetFile(path: path) }
        let unlabelled = #"{"class_names":["a","b"],"split":"x","source":"","labelled":false}"#
        writeBytes(path, handAssembled(json: unlabelled, classCount: 2, labels: [-1, 1]))
        assertDatasetError(.labelOutOfRange, [path, "image 1 has label 1", "unlabelled"]) { _ = try DatasetFile(path: path) }
        writeBytes(path, handAssembled(json: unlabelled, classCount: 2, labels: [-1, -1]))
        XCTAssertFalse(try DatasetFile(path: path).isLabelled)
        writeBytes(path, handAssembled(json: #"{"class_names":["a","b"],"split":"x","source":"","labelled":"no"}"#,
                                       classCount: 2, labels: [0, 1]))
        assertDatasetError(.badHeader, [path, #""labelled" is not true or false"#]) { _ = try DatasetFile(path: path) }
    }

    func testWriterRejectsMisuseAndLeavesNothing() throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/a.cds"
        let info = DatasetInfo(classNames: ["a", "b"], split: "x", source: "")
        do {
            let writer = try DatasetWriter(path: path, height: 2, width: 2, channels: 3, count: 2, info: info)
            assertDatasetError(.invalidArgument, ["11 bytes"]) { try writer.append(image: [UInt8](repeating: 0, count: 11), label: 0) }
            assertDatasetError(.labelOutOfRange) { try writer.append(image: [UInt8](repeating: 0, count: 12), label: 2) }
            try writer.append(image: [UInt8](repeating: 0, count: 12), label: 1)
            assertDatasetError(.invalidArgument, ["1 images appended but 2 announced"]) { try writer.finish() }
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [])
        do {   // dropped without finish
            let writer = try DatasetWriter(path: path, height: 2, width: 2, channels: 3, count: 1, info: info)
            try writer.append(image: [UInt8](repeating: 0, count: 12), label: 1)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [])
    }
}
