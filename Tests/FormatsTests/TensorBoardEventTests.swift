@testable import Formats
import Foundation
import ImageDecoding
import TestSupport
import XCTest

/// CRC-32C, TFRecord framing and the `Event` encoding against TensorBoard: the fixture
/// `Fixtures/reference.tfevents` was written by TensorBoard's own protobuf classes and
/// record writer (`python reference/tensorboard_events.py write`).
final class TensorBoardEventTests: XCTestCase {
    var directory: String!

    override func setUp() { directory = makeTemporaryDirectory(name) }
    override func tearDown() { try? FileManager.default.removeItem(atPath: directory) }

    /// The fixture's path in the checkout (FormatsTests declares no resources).
    private func fixturePath() throws -> String {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/reference.tfevents").standardized.path
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("no checkout at \(path)") }
        return path
    }

    /// The 3×2 RGB PNG of the fixture's image (the same bytes as in the Python script).
    static let png3x2: [UInt8] = hexBytes(
        "89504e470d0a1a0a0000000d49484452000000030000000208020000001216f14d00000016494441"
        + "5478da63f8cfc0c000c1ffffff6f68680032014c4f077be479a7440000000049454e44ae426082")

    /// The events of `reference/tensorboard_events.py`'s `fixture_events()`.
    static let fixtureEvents: [TensorBoardEvent] = [
        TensorBoardEvent(wallTime: 1_700_000_000.25, step: 0, payload: .fileVersion("brain.Event:2")),
        TensorBoardEvent(wallTime: 1_700_000_000.5, step: 0, payload: .summary([.scalar("train/loss", 1.0986123)])),
        TensorBoardEvent(wallTime: 1_700_000_001.5, step: 1,
                         payload: .summary([.scalar("train/loss", 0.6931472), .scalar("train/lr", 0.001)])),
        TensorBoardEvent(wallTime: 1_700_000_002.75, step: 2,
                         payload: .summary([.scalar("train/zero", 0), .scalar("train/negative", -3.5)])),
        TensorBoardEvent(wallTime: 1_700_000_003.0, step: 300, payload: .summary([.scalar("val/balanced_accuracy", 0.875)])),
        TensorBoardEvent(wallTime: 1_700_000_004.125, step: 300, payload: .summary([
            TensorBoardValue(tag: "val/confusion_matrix",
                             content: .image(TensorBoardImage(height: 2, width: 3, colorspace: 3, encoded: png3x2))),
        ])),
    ]

    func testCRC32CCheckValues() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)   // RFC 3720 B.4
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(CRC32C.checksum((0..<32).map(UInt8.init)), 0x46DD_794E)
        XCTAssertEqual(CRC32C.checksum([]), 0)
        let whole = Array("a longer message, checksummed in two pieces".utf8)
        XCTAssertEqual(CRC32C.checksum(Array(whole[17...]), initial: CRC32C.checksum(Array(whole[..<17]))),
                       CRC32C.checksum(whole))
        XCTAssertNotEqual(CRC32C.checksum(Array("123456789".utf8)), Zlib.crc32(Array("123456789".utf8)),
                          "CRC-32C is not zlib's CRC-32")
    }

    func testMasking() {
        XCTAssertEqual(CRC32C.masked(0), 0xA282_EAD8)
        XCTAssertEqual(CRC32C.masked(0x1234_5678), 0x4F73_0F40)
        XCTAssertEqual(CRC32C.masked(0xE306_9283), 0xC78A_B0E5)   // TensorBoard's masked_crc32c(b"123456789")
    }

    /// The same events, encoded and framed by us, are TensorBoard's file byte for byte.
    func testEncodingIsByteIdenticalToTensorBoardsWriter() throws {
        let reference = readBytes(try fixturePath())
        let ours = Self.fixtureEvents.flatMap { TFRecord.frame($0.encoded()) }
        XCTAssertEqual(ours.count, reference.count)
        XCTAssertTrue(ours == reference, "the file differs from TensorBoard's (the events that differ follow)")
        let records = try TFRecord.records(in: reference, path: "reference.tfevents")
        XCTAssertEqual(records.count, Self.fixtureEvents.count)
        for (event, range) in zip(Self.fixtureEvents, records) {
            XCTAssertEqual(event.encoded(), Array(reference[range]), "\(event)")
        }
    }

    func testReaderDecodesTensorBoardsFile() throws {
        let events = try TensorBoardEventReader.read(path: try fixturePath())
        XCTAssertEqual(events, Self.fixtureEvents)
        let image = try XCTUnwrap(events.last?.values.first?.image)
        let png = try image.encoded.withUnsafeBytes { try ImageDecoder.decode($0, path: "image") }
        XCTAssertEqual([png.width, png.height], [image.width, image.height])
        XCTAssertEqual(Array(png.pixels.prefix(6)), [255, 0, 0, 0, 255, 0])
    }

    func testWriterStartsAFileThatReadsBack() throws {
        let logs = directory + "/run/tensorboard"
        let writer = try TensorBoardEventWriter(directory: logs, wallTime: 1_700_000_000.5)
        XCTAssertTrue(writer.path.hasPrefix(logs + "/events.out.tfevents.1700000000."), writer.path)
        try writer.write(step: 7, values: [.scalar("train/loss", 0.25), .scalar("train/lr", 1e-4)], wallTime: 1_700_000_001)
        try writer.write(TensorBoardEvent(wallTime: 1_700_000_002, step: 1 << 40, payload: .summary([.scalar("big", -1)])))
        // Each event is in the file as soon as it is written.
        XCTAssertEqual(try TensorBoardEventReader.read(path: writer.path), [
            TensorBoardEvent(wallTime: 1_700_000_000.5, step: 0, payload: .fileVersion("brain.Event:2")),
            TensorBoardEvent(wallTime: 1_700_000_001, step: 7,
                             payload: .summary([.scalar("train/loss", 0.25), .scalar("train/lr", 1e-4)])),
            TensorBoardEvent(wallTime: 1_700_000_002, step: 1 << 40, payload: .summary([.scalar("big", -1)])),
        ])
        // A second writer in the same second gets a file of its own, sorted after the first.
        let second = try TensorBoardEventWriter(directory: logs, wallTime: 1_700_000_000.9)
        XCTAssertNotEqual(second.path, writer.path)
        XCTAssertEqual(TensorBoardEventWriter.eventFiles(in: logs), [writer.path, second.path])
        try TensorBoardEventWriter.removeEventFiles(in: logs)
        XCTAssertEqual(TensorBoardEventWriter.eventFiles(in: logs), [])
    }

    func testTruncatedFileNamesTheFileAndTheRecord() throws {
        let reference = readBytes(try fixturePath())
        let records = try TFRecord.records(in: reference, path: "x")
        let path = directory + "/cut.tfevents"
        // Inside the header of record 3, inside its data, and inside its data CRC.
        let third = records[3].lowerBound - 12
        for cut in [third + 5, records[3].lowerBound + 3, records[3].upperBound + 2] {
            writeBytes(path, Array(reference[..<cut]))
            assertImportError(.truncated, [path, "truncated event file", "record 3 at byte \(third)", "3 records before it"]) {
                _ = try TensorBoardEventReader.read(path: path)
            }
        }
        writeBytes(path, Array(reference[..<(records[3].upperBound + 4)]))   // a whole number of records
        XCTAssertEqual(try TensorBoardEventReader.read(path: path), Array(Self.fixtureEvents.prefix(4)))
    }

    func testCorruptFileNamesTheFileAndWhatIsWrong() throws {
        let reference = readBytes(try fixturePath())
        let records = try TFRecord.records(in: reference, path: "x")
        let path = directory + "/bad.tfevents"
        var bytes = reference
        bytes[records[2].lowerBound + 4] ^= 0x01
        writeBytes(path, bytes)
        assertImportError(.checksumMismatch, [path, "record 2 at byte \(records[2].lowerBound - 12)", "data CRC"]) {
            _ = try TensorBoardEventReader.read(path: path)
        }
        bytes = reference
        bytes[records[1].lowerBound - 12] ^= 0x40   // the length of record 1
        writeBytes(path, bytes)
        assertImportError(.checksumMismatch, [path, "record 1", "length CRC"]) { _ = try TensorBoardEventReader.read(path: path) }
        // Correct framing around bytes that are not an Event: field 1 as a varint.
        writeBytes(path, TFRecord.frame([0x08, 0x01]))
        assertImportError(.corrupt, [path, "record 0 at byte 0", "not an Event protobuf", "wrong wire type"]) {
            _ = try TensorBoardEventReader.read(path: path)
        }
        writeBytes(path, TFRecord.frame([0x2A, 0x05, 0x0A]))   // a summary announcing more bytes than it holds
        assertImportError(.corrupt, [path, "not an Event protobuf"]) { _ = try TensorBoardEventReader.read(path: path) }
        assertImportError(.io, [directory + "/missing.tfevents"]) {
            _ = try TensorBoardEventReader.read(path: directory + "/missing.tfevents")
        }
    }

    /// A resumed run drops what a killed run logged after the checkpoint, and the killed
    /// writer's incomplete last record.
    func testTrimDropsLaterStepsAndAnIncompleteRecord() throws {
        let logs = directory + "/tensorboard"
        let writer = try TensorBoardEventWriter(directory: logs, wallTime: 1_700_000_000)
        for step in 1...6 { try writer.write(step: step, values: [.scalar("train/loss", Float(step))], wallTime: 1_700_000_000) }
        let partial = TFRecord.frame(TensorBoardEvent(wallTime: 1, step: 7, payload: .summary([.scalar("x", 1)])).encoded())
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: writer.path))
        handle.seekToEndOfFile()
        handle.write(Data(partial.prefix(20)))
        try handle.close()
        let untouched = directory + "/other.tfevents"
        writeBytes(untouched, [1, 2, 3])   // not in the folder: never read

        try TensorBoardEventWriter.trim(directory: logs, toStep: 4)
        let events = try TensorBoardEventReader.read(path: writer.path)
        XCTAssertEqual(events.map(\.step), [0, 1, 2, 3, 4])
        XCTAssertEqual(events.last?.values, [.scalar("train/loss", 4)])
        let trimmed = readBytes(writer.path)
        try TensorBoardEventWriter.trim(directory: logs, toStep: 4)   // nothing more to drop
        XCTAssertEqual(readBytes(writer.path), trimmed)
        XCTAssertEqual(readBytes(untouched), [1, 2, 3])
    }

    func testHeatMapLayoutShadesAndCounts() throws {
        let counts = [[8, 2, 0], [1, 0, 9], [0, 0, 0]]
        let map = HeatMapImage(counts: counts)
        XCTAssertEqual(map.cellSide, 24)   // one digit: max(24, 8·1 + 8)
        XCTAssertEqual([map.width, map.height], [3 * 25 + 1, 3 * 25 + 1])
        XCTAssertEqual(HeatMapImage(counts: [[123, 0], [4, 5]]).cellSide, 32)   // 8·3 + 8
        let png = try map.png.withUnsafeBytes { try ImageDecoder.decode($0, path: "heat map") }
        XCTAssertEqual(png.pixels, map.pixels)
        func pixel(_ x: Int, _ y: Int) -> [UInt8] { Array(map.pixels[(y * map.width + x) * 3 ..< (y * map.width + x) * 3 + 3]) }
        func cellCorner(_ i: Int, _ j: Int) -> [UInt8] { pixel(1 + j * 25 + 1, 1 + i * 25 + 1) }
        XCTAssertEqual(pixel(0, 0), [160, 160, 160])              // grid line
        XCTAssertEqual(cellCorner(2, 2), [255, 255, 255])         // an empty row is white
        XCTAssertEqual(cellCorner(1, 2), [33, 69, 122])           // 9 of 10: 0.9 of the way to (8, 48, 107)
        let (dark, light) = (cellCorner(0, 0), cellCorner(0, 1))  // 0.8 and 0.2 of row 0
        XCTAssertTrue(zip(dark, light).allSatisfy { $0 < $1 })
        // The count is drawn: ink of the contrasting colour inside the cell.
        func inkPixels(_ i: Int, _ j: Int, ink: [UInt8]) -> Int {
            (0..<24).flatMap { y in (0..<24).map { x in pixel(1 + j * 25 + x, 1 + i * 25 + y) } }.filter { $0 == ink }.count
        }
        XCTAssertEqual(inkPixels(0, 0, ink: [255, 255, 255]), 4 * 13)   // "8": 13 lit cells of 3×5, 2×2 pixels each
        XCTAssertEqual(inkPixels(0, 1, ink: [0, 0, 0]), 4 * 11)         // "2"
        XCTAssertEqual(inkPixels(0, 2, ink: [0, 0, 0]), 4 * 12)         // "0"
    }
}

private func hexBytes(_ hex: String) -> [UInt8] {
    let digits = Array(hex)
    return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
}
