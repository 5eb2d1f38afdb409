@testable import Datasets
@testable import Formats
import TestSupport
import XCTest

/// `clipit import pcam` on the HDF5 files of `reference/make_pcam_fixtures.py`
/// (Fixtures/pcam): pixels and labels follow formulas repeated here, so every imported byte
/// is checked against an independent computation.
final class PCamImporterTests: XCTestCase {
    var directory = ""
    override func setUp() { directory = makeTemporaryDirectory() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: directory) }

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/pcam").standardized.path
    static let offsets = ["train": 0, "val": 100, "test": 200]

    /// x[i, h, w, c] of the fixtures (make_pcam_fixtures.py, `pixels`).
    func expectedImage(_ i: Int, height: Int, width: Int, offset: Int) -> [UInt8] {
        var image: [UInt8] = []
        for h in 0..<height {
            for w in 0..<width {
                for c in 0..<3 {
                    image.append(UInt8((29 * (i + offset) + 3 * h + 7 * w + 61 * c + ((h * w) >> 8) + 17 * (((h >> 3) ^ (w >> 3)) & 1)) % 256))
                }
            }
        }
        return image
    }

    /// y[i] of the fixtures (make_pcam_fixtures.py, `labels`).
    func expectedLabel(_ i: Int, offset: Int) -> Int32 { Int32((i + i / 3 + offset) % 2) }

    func assertSplit(_ path: String, split: String, count: Int, height: Int, width: Int,
                     file: StaticString = #filePath, line: UInt = #line) throws {
        let dataset = try DatasetFile(path: path)
        let offset = Self.offsets[split]!
        XCTAssertEqual([dataset.count, dataset.height, dataset.width, dataset.channels], [count, height, width, 3], file: file, line: line)
        XCTAssertEqual(dataset.classNames, ["normal", "tumor"], file: file, line: line)
        XCTAssertEqual(dataset.split, split, file: file, line: line)
        XCTAssertTrue(dataset.info.source.hasPrefix("PCam camelyonpatch_level_2_split_"), dataset.info.source, file: file, line: line)
        XCTAssertEqual(dataset.labels, (0..<count).map { expectedLabel($0, offset: offset) }, file: file, line: line)
        for i in 0..<count {
            XCTAssertEqual(Array(dataset.imageBytes(at: i)), expectedImage(i, height: height, width: width, offset: offset),
                           "image \(i) of \(path)", file: file, line: line)
        }
    }

    /// A copy of fixture folder `name` under the test's temporary directory.
    func copyFixture(_ name: String) -> String {
        let copy = directory + "/input-" + name.replacingOccurrences(of: "/", with: "-")
        try! FileManager.default.copyItem(atPath: Self.fixtures + "/" + name, toPath: copy)
        return copy
    }

    func file(_ folder: String, _ split: String, _ array: String) -> String {
        folder + "/" + PCamImporter.fileName(split: split, array: array)
    }

    // MARK: Importing

    func testPublishedLayoutImportsEveryPixelAndLabel() throws {
        // The default batch (whole chunks) and batches of 2 rows, which do not divide the
        // split sizes (7, 5, 5): the last read of each split is partial.
        for rows in [nil, 2] as [Int?] {
            let out = directory + "/out-\(rows ?? 0)/nested"
            var calls: [String: [Int]] = [:]
            let result = try PCamImporter.importFolder(directory: Self.fixtures + "/published", outputDirectory: out,
                                                       rowsPerRead: rows) { split, done, total in
                calls[split, default: []].append(done)
                XCTAssertEqual(total, ["train": 7, "val": 5, "test": 5][split])
            }
            XCTAssertEqual(result.missing, [])
            XCTAssertEqual(result.splits.map(\.split), ["train", "val", "test"])
            XCTAssertEqual(result.splits.map(\.path), ["train", "val", "test"].map { out + "/\($0).cds" })
            XCTAssertEqual(result.splits.map(\.count), [7, 5, 5])
            for split in result.splits {
                let offset = Self.offsets[split.split]!
                let labels = (0..<split.count).map { expectedLabel($0, offset: offset) }
                XCTAssertEqual(split.classCounts, [labels.filter { $0 == 0 }.count, labels.filter { $0 == 1 }.count])
                try assertSplit(split.path, split: split.split, count: split.count, height: 96, width: 96)
            }
            if rows == 2 {
                XCTAssertEqual(calls, ["train": [2, 4, 6, 7], "val": [2, 4, 5], "test": [2, 4, 5]])
            } else {
                XCTAssertEqual(calls, ["train": [7], "val": [5], "test": [5]])
            }
        }
    }

    func testUncompressedContiguousFileAndMissingSplits() throws {
        let out = directory + "/out"
        let result = try PCamImporter.importFolder(directory: Self.fixtures + "/contiguous", outputDirectory: out, rowsPerRead: 2)
        XCTAssertEqual(result.missing, ["valid", "test"])
        XCTAssertEqual(result.splits.map(\.split), ["train"])
        try assertSplit(out + "/train.cds", split: "train", count: 3, height: 32, width: 24)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/val.cds"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/test.cds"))
    }

    func testReadsCoverWholeChunksOfAboutEightMebibytes() {
        XCTAssertEqual(PCamImporter.rowsPerRead(imageBytes: 96 * 96 * 3, chunkRows: 1), 303)
        XCTAssertEqual(PCamImporter.rowsPerRead(imageBytes: 96 * 96 * 3, chunkRows: 32), 288)
        XCTAssertEqual(PCamImporter.rowsPerRead(imageBytes: 96 * 96 * 3, chunkRows: 1000), 303)
        XCTAssertEqual(PCamImporter.rowsPerRead(imageBytes: 1024 * 1024 * 3, chunkRows: 1), 2)
    }

    // MARK: Files that are not ready

    func testGzippedDownloadsAskForGunzip() throws {
        let input = copyFixture("published")
        let x = file(input, "valid", "x")
        writeBytes(x + ".gz", Zlib.deflate(readBytes(x), format: .gzip))
        try FileManager.default.removeItem(atPath: x)
        assertImportError(.unsupported, [x + ".gz", "gunzip first: gunzip '\(x).gz'"]) {
            _ = try PCamImporter.importFolder(directory: input, outputDirectory: directory + "/out")
        }
        // A gzip stream under the .h5 name.
        writeBytes(x, Zlib.deflate(readBytes(file(input, "test", "x")), format: .gzip))
        assertImportError(.badSignature, [x, "gzip-compressed", "gunzip first"]) {
            _ = try PCamImporter.importFolder(directory: input, outputDirectory: directory + "/out")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/out"), "nothing is written before every split is checked")
    }

    func testNoSplitAndHalfSplitsAreErrors() throws {
        let empty = directory + "/empty"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        assertImportError(.invalidInput, [empty, "no PCam split", "camelyonpatch_level_2_split_{train,valid,test}_{x,y}.h5"]) {
            _ = try PCamImporter.importFolder(directory: empty, outputDirectory: directory + "/out")
        }
        assertImportError(.io, [directory + "/absent", "not a directory"]) {
            _ = try PCamImporter.importFolder(directory: directory + "/absent", outputDirectory: directory + "/out")
        }
        let input = copyFixture("published")
        try FileManager.default.removeItem(atPath: file(input, "test", "y"))
        assertImportError(.io, [file(input, "test", "y"), "no such file", "camelyonpatch_level_2_split_test_x.h5"]) {
            _ = try PCamImporter.importFolder(directory: input, outputDirectory: directory + "/out")
        }
    }

    // MARK: Damaged files

    func testTruncatedAndCorruptFilesNameTheFile() throws {
        let input = copyFixture("published")
        let x = file(input, "train", "x")
        let original = readBytes(x)
        let out = directory + "/out"
        // Cut inside the chunk data, inside the metadata, and inside the superblock.
        for length in [original.count - 4000, original.count / 2, 1000, 40] {
            writeBytes(x, Array(original[0..<length]))
            // HDF5 may find a damaged structure before it notices that the file is short.
            do {
                _ = try PCamImporter.importFolder(directory: input, outputDirectory: out)
                XCTFail("truncated to \(length) bytes: imported")
            } catch let error as ImportError {
                XCTAssertTrue([.truncated, .corrupt].contains(error.kind), "\(length) bytes: \(error.kind) \(error)")
                XCTAssertTrue(error.description.hasPrefix(x + ": "), "\(length) bytes: \(error)")
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/train.cds"), "no partial output after \(length) bytes")
        }
        // Deflate data overwritten in the last chunk: the read fails, naming file and rows.
        var damaged = original
        for i in (original.count - 1500)..<(original.count - 1000) { damaged[i] = UInt8(i % 251) }
        writeBytes(x, damaged)
        assertImportError(.corrupt, [x, "dataset 'x', rows", "HDF5"]) {
            _ = try PCamImporter.importFolder(directory: input, outputDirectory: out)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/train.cds"), "the failed split leaves no file")
        // Damaged chunk dimensions (found by Tests/Integration/pcam_fuzz.sh): the labels'
        // layout message declares chunks (7, 1, 1, 1) of 1-byte elements; one flipped bit
        // makes the second 262145, and HDF5 1.10 then copies past its chunk buffer
        // (a segmentation fault) unless the importer refuses the file first.
        writeBytes(x, original)
        let y = file(input, "train", "y")
        var labels = readBytes(y)
        let chunkDims: [UInt8] = [7, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]
        let at = try XCTUnwrap((0...(labels.count - chunkDims.count)).first { Array(labels[$0..<($0 + chunkDims.count)]) == chunkDims })
        labels[at + 6] ^= 0x04
        writeBytes(y, labels)
        assertImportError(.corrupt, [y, "chunks [7, 262145, 1, 1] larger than its fixed extent [7, 1, 1, 1]"]) {
            _ = try PCamImporter.importFolder(directory: input, outputDirectory: out)
        }
        // Not HDF5 at all.
        writeBytes(x, Array("x,y\n1,2\n".utf8) + [UInt8](repeating: 0x20, count: 4000))
        assertImportError(.badSignature, [x, "not an HDF5 file"]) {
            _ = try PCamImporter.importFolder(directory: input, outputDirectory: out)
        }
    }

    // MARK: Unusable content

    func testUnusableShapesTypesAndLabelsAreRefused() throws {
        let cases: [(String, ImportError.Kind, String, [String])] = [
            ("x_float", .invalidInput, "x", ["holds float32", "expected uint8"]),
            ("x_int8", .invalidInput, "x", ["holds int8", "expected uint8"]),
            ("x_rank3", .invalidInput, "x", ["shape [3, 8, 8]", "(N, H, W, 3)"]),
            ("x_channels4", .invalidInput, "x", ["shape [3, 8, 8, 4]", "(N, H, W, 3)"]),
            ("x_too_tall", .invalidInput, "x", ["5000×8", "1 to 1024"]),
            ("x_too_many", .invalidInput, "x", ["1099511627776 images", "expected 1 to"]),
            ("x_huge_chunks", .unsupported, "x", ["chunks of 402653184 bytes", "h5repack"]),
            ("x_unwritten", .corrupt, "x", ["stores no data"]),
            ("x_misnamed", .invalidInput, "x", ["no dataset 'x'", "images"]),
            ("y_count", .invalidInput, "y", ["2 labels", "3 images", "camelyonpatch_level_2_split_train_x.h5"]),
            ("y_label2", .invalidInput, "y", ["label 2 of image 1", "not 0 (normal) or 1 (tumor)"]),
            ("y_shape", .invalidInput, "y", ["shape [3, 2]", "(N, 1, 1, 1)"]),
            ("y_float", .invalidInput, "y", ["holds float32", "integer labels"]),
        ]
        var checked = 0
        for (name, kind, array, fragments) in cases {
            let input = Self.fixtures + "/bad/" + name
            let out = directory + "/out-" + name
            XCTAssertNil(importErrorMismatch(kind, [file(input, "train", array)] + fragments) {
                _ = try PCamImporter.importFolder(directory: input, outputDirectory: out)
            }, name)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/train.cds"), name)
            checked += 1
        }
        XCTAssertEqual(checked, try FileManager.default.contentsOfDirectory(atPath: Self.fixtures + "/bad").count,
                       "every bad fixture has a case here")
    }
}
