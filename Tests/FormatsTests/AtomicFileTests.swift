@testable import Formats
import Foundation
import XCTest

final class AtomicFileTests: XCTestCase {
    private var directory: String!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("atomic-file-tests-\(getpid())-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func contents(_ path: String) -> [UInt8]? {
        FileManager.default.contents(atPath: path).map { [UInt8]($0) }
    }

    private func listing() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
    }

    func testCommitWritesEveryPieceAndLeavesNoTemporary() throws {
        let path = directory + "/out.bin"
        let large = (0 ..< (3 << 20) / 2).map { UInt8(truncatingIfNeeded: $0 &* 7) }   // over the 1 MiB buffer
        let writer = try AtomicFileWriter(path: path, computingCRC32: true)
        XCTAssertTrue(writer.temporary.hasPrefix(path + ".tmp-"))
        try writer.write([1, 2, 3])
        try writer.write(integer: UInt32(0x0A0B_0C0D))
        try writer.writeZeros(2)
        try writer.write(large)
        XCTAssertNil(contents(path), "nothing at the final path before commit")
        try writer.commit()
        let expected: [UInt8] = [1, 2, 3, 0x0D, 0x0C, 0x0B, 0x0A, 0, 0] + large
        XCTAssertEqual(contents(path), expected)
        XCTAssertEqual(writer.bytesWritten, expected.count)
        XCTAssertEqual(writer.crc32, Zlib.crc32(expected))
        XCTAssertEqual(try listing(), ["out.bin"])
    }

    func testReplacesAnExistingFile() throws {
        let path = directory + "/out.txt"
        try AtomicFileWriter.write(Array("first, longer".utf8), to: path)
        try AtomicFileWriter.write(Array("second".utf8), to: path)
        XCTAssertEqual(contents(path), Array("second".utf8))
        XCTAssertEqual(try listing(), ["out.txt"])
    }

    func testAbandonedOrReleasedWriterLeavesTheOldFile() throws {
        let path = directory + "/kept.txt"
        try AtomicFileWriter.write(Array("old".utf8), to: path)
        let abandoned = try AtomicFileWriter(path: path)
        try abandoned.write(Array("new".utf8))
        abandoned.abandon()
        do {
            let dropped = try AtomicFileWriter(path: path)
            try dropped.write(Array("newer".utf8))
        }
        XCTAssertEqual(contents(path), Array("old".utf8))
        XCTAssertEqual(try listing(), ["kept.txt"])
    }

    func testMissingDirectoryThrowsFileIOErrorNamingThePath() {
        let path = directory + "/no/such/dir/x.bin"
        XCTAssertThrowsError(try AtomicFileWriter.write([1], to: path)) { error in
            guard let error = error as? FileIOError else { return XCTFail("not a FileIOError: \(error)") }
            XCTAssertEqual(error.path, path)
            XCTAssertEqual(error.call, "open")
            XCTAssertEqual(error.code, ENOENT)
            XCTAssertTrue(error.description.hasPrefix(path + ": "), "\(error)")
            XCTAssertTrue(error.reason.contains("temporary") && error.reason.contains("writable"), "\(error)")
        }
    }

    func testMappedFileReadsBytesAndReportsMissingFiles() throws {
        let path = directory + "/mapped.bin"
        try AtomicFileWriter.write([9, 8, 7], to: path)
        let file = try MappedFile(path: path)
        XCTAssertEqual(file.size, 3)
        XCTAssertEqual(Array(file.bytes), [9, 8, 7])
        try AtomicFileWriter.write([], to: directory + "/empty.bin")
        let empty = try MappedFile(path: directory + "/empty.bin")
        XCTAssertEqual(empty.size, 0)
        XCTAssertNil(empty.base)
        XCTAssertEqual(empty.bytes.count, 0)
        XCTAssertThrowsError(try MappedFile(path: directory + "/absent")) { error in
            guard let error = error as? FileIOError else { return XCTFail("not a FileIOError: \(error)") }
            XCTAssertEqual(error.call, "open")
            XCTAssertEqual(error.code, ENOENT)
            XCTAssertTrue("\(error)".contains(directory + "/absent") && error.reason.contains("check the path"), "\(error)")
        }
    }

    func testJSONStringEscapesDeterministically() {
        XCTAssertEqual(jsonString("plain"), "\"plain\"")
        XCTAssertEqual(jsonString("q\"b\\n\nr\rt\t"), "\"q\\\"b\\\\n\\nr\\rt\\t\"")
        XCTAssertEqual(jsonString("\u{01}\u{1f}"), "\"\\u0001\\u001f\"")
        XCTAssertEqual(jsonString("é ∑ 🙂"), "\"é ∑ 🙂\"")
        // What it writes, JSON parsers read back.
        let text = "a\"\\\u{0}\u{7}\n😀"
        let parsed = try? JSONSerialization.jsonObject(with: Data(("[" + jsonString(text) + "]").utf8)) as? [String]
        XCTAssertEqual(parsed, [text])
    }
    func testOutputFoldersAreCreatedOnTheWayAndAFileInThePathIsNamed() throws {
        let nested = directory + "/a/b/c"
        try OutputDirectory.create(nested)
        try OutputDirectory.create(nested)   // existing: fine
        var isFolder: ObjCBool = false
        XCTAssertTrue(FileManager.default.fileExists(atPath: nested, isDirectory: &isFolder) && isFolder.boolValue)

        try AtomicFileWriter.write([1, 2, 3], to: directory + "/a/file")
        XCTAssertThrowsError(try OutputDirectory.create(directory + "/a/file/run")) { error in
            let e = error as? FileIOError
            XCTAssertEqual(e?.code, ENOTDIR)
            XCTAssertEqual(e?.description, directory + "/a/file/run: cannot create the output folder: '" + directory
                           + "/a/file' is a file, not a folder; choose another --out or move the file away")
        }
    }

    func testJSONWithANonFiniteValueIsRefusedNamingTheFileAndTheKey() throws {
        struct Summary: Encodable { var name = "run"; var losses: [Double] }
        let path = directory + "/summary.json"
        XCTAssertThrowsError(try AtomicFileWriter.writeJSON(Summary(losses: [0.5, .nan]), to: path)) { error in
            XCTAssertEqual((error as? FileIOError)?.description,
                           path + ": cannot write 'losses.1' = nan: JSON has no NaN or infinity (a non-finite result)")
        }
        XCTAssertNil(contents(path), "nothing written")
        try AtomicFileWriter.writeJSON(Summary(losses: [0.5]), to: path)
        XCTAssertNotNil(contents(path))
    }
    /// Every JSON file: snake_case keys out; snake_case and the older camelCase keys in
    /// (acronyms included); dictionary keys (class names) untouched both ways.
    func testJSONKeysAreSnakeCaseAndOlderCamelCaseKeysStillRead() throws {
        struct Metrics: Codable, Equatable {
            var balancedAccuracy: Double
            var macroF1: Double
            var macroAUROC: Double?
            var imageToTextTop1: Double
            var perClass: [String: Int]
        }
        let value = Metrics(balancedAccuracy: 0.5, macroF1: 0.25, macroAUROC: 0.75, imageToTextTop1: 0.125,
                            perClass: ["normalMucosa": 1, "ADI": 2, "tumour_stroma": 3])
        let json = String(decoding: try prettyJSON(value), as: UTF8.self)
        for key in ["balanced_accuracy", "macro_f1", "macro_auroc", "image_to_text_top1", "per_class",
                    "normalMucosa", "ADI", "tumour_stroma"] {
            XCTAssertTrue(json.contains("\"\(key)\""), "\(key) missing from \(json)")
        }
        XCTAssertEqual(try ProjectJSON.decoder().decode(Metrics.self, from: Data(json.utf8)), value)
        let older = try JSONEncoder().encode(value)   // camelCase keys, as files were written before
        XCTAssertTrue(String(decoding: older, as: UTF8.self).contains("\"macroAUROC\""))
        XCTAssertEqual(try ProjectJSON.decoder().decode(Metrics.self, from: older), value)
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: older) as? [String: Any])
        XCTAssertEqual(ProjectJSON.value(object, "macro_auroc") as? Double, 0.75)
        XCTAssertEqual(ProjectJSON.value(object, "balanced_accuracy") as? Double, 0.5)
    }

    func testJSONBooleansAreToldApartFromTheNumbersOneAndZero() throws {
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(
            with: Data(#"{"one":1,"zero":0,"yes":true,"no":false,"half":0.5}"#.utf8)) as? [String: Any])
        XCTAssertEqual(["one", "zero", "yes", "no", "half"].map { isJSONBoolean(object[$0]!) }, [false, false, true, true, false])
    }
}
