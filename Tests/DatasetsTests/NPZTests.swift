@testable import Datasets
@testable import Formats
import TestSupport
import XCTest

/// Builds .npy bytes (format 1.0) for tests.
func npyBytes(descr: String, shape: [Int], data: [UInt8], fortran: Bool = false, version: UInt8 = 1) -> [UInt8] {
    let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
    var header = "{'descr': '\(descr)', 'fortran_order': \(fortran ? "True" : "False"), 'shape': \(shapeText), }"
    let prefix = version == 1 ? 10 : 12
    while (prefix + header.utf8.count + 1) % 64 != 0 { header += " " }
    header += "\n"
    let length = header.utf8.count
    var out: [UInt8] = [0x93] + Array("NUMPY".utf8) + [version, 0]
    out += version == 1 ? [UInt8(length & 0xFF), UInt8(length >> 8)]
                        : [UInt8(length & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length >> 16 & 0xFF), UInt8(length >> 24)]
    return out + Array(header.utf8) + data
}

/// A minimal zip writer: stored or deflated members, optionally with numpy's ZIP64 local
/// headers (sizes 0xFFFFFFFF plus a ZIP64 extra field).
func zipArchive(_ members: [(name: String, data: [UInt8], deflate: Bool)], zip64Local: Bool = false) -> [UInt8] {
    func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
    func le32(_ v: Int) -> [UInt8] { (0..<4).map { UInt8(v >> (8 * $0) & 0xFF) } }
    func le64(_ v: Int) -> [UInt8] { (0..<8).map { UInt8(v >> (8 * $0) & 0xFF) } }
    var out: [UInt8] = [], directory: [UInt8] = []
    for member in members {
        let payload = member.deflate ? Zlib.deflate(member.data, format: .raw) : member.data
        let crc = Int(Zlib.crc32(member.data))
        let name = Array(member.name.utf8)
        let method = member.deflate ? 8 : 0
        let offset = out.count
        let extra = zip64Local ? le16(1) + le16(16) + le64(member.data.count) + le64(payload.count) : []
        out += le32(0x0403_4B50) + le16(45) + le16(0) + le16(method) + le16(0) + le16(0x21) + le32(crc)
        out += zip64Local ? le32(0xFFFF_FFFF) + le32(0xFFFF_FFFF) : le32(payload.count) + le32(member.data.count)
        out += le16(name.count) + le16(extra.count) + name + extra + payload
        directory += le32(0x0201_4B50) + le16(45) + le16(45) + le16(0) + le16(method) + le16(0) + le16(0x21) + le32(crc)
        directory += le32(payload.count) + le32(member.data.count) + le16(name.count) + le16(0) + le16(0) + le16(0) + le16(0)
        directory += le32(0) + le32(offset) + name
    }
    let directoryOffset = out.count
    out += directory
    out += le32(0x0605_4B50) + le16(0) + le16(0) + le16(members.count) + le16(members.count)
    out += le32(directory.count) + le32(directoryOffset) + le16(0)
    return out
}

final class NPZTests: XCTestCase {
    var directory = ""
    override func setUp() { directory = makeTemporaryDirectory() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: directory) }

    // MARK: npz

    func testStoredAndDeflatedMembersWithAndWithoutZIP64() throws {
        let images = (0..<(4 * 3 * 2 * 3)).map { UInt8($0) }
        let labels: [UInt8] = (0..<4).flatMap { i -> [UInt8] in [UInt8(i % 3)] + [UInt8](repeating: 0, count: 7) }
        let floats: [UInt8] = [Float(1.5), -2].flatMap { f in withUnsafeBytes(of: f.bitPattern.littleEndian, Array.init) }
        for zip64 in [false, true] {
            for deflate in [false, true] {
                let path = directory + "/a-\(zip64)-\(deflate).npz"
                writeBytes(path, zipArchive([
                    ("train_images.npy", npyBytes(descr: "|u1", shape: [4, 3, 2, 3], data: images), deflate),
                    ("train_labels.npy", npyBytes(descr: "<i8", shape: [4, 1], data: labels, version: 2), !deflate),
                    ("extra.npy", npyBytes(descr: "<f4", shape: [2], data: floats), deflate)], zip64Local: zip64))
                let archive = try NPZArchive(path: path)
                XCTAssertEqual(archive.arrayNames, ["train_images", "train_labels", "extra"])
                let header = try archive.header("train_images")
                XCTAssertEqual(header.shape, [4, 3, 2, 3]); XCTAssertEqual(header.descr, "|u1")
                XCTAssertEqual(try archive.readArray("train_images").bytes, images)
                XCTAssertEqual(try archive.readArray("train_labels").integers(path: path), [0, 1, 2, 0])
                XCTAssertEqual(try archive.readArray("extra").floats(path: path), [1.5, -2])
                var streamed: [UInt8] = []
                try archive.streamArray("train_images") { _, piece in streamed += piece }
                XCTAssertEqual(streamed, images)
                // 7-byte pieces: the .npy header itself arrives in pieces.
                archive.pieceSize = 7
                streamed = []
                let streamedHeader = try archive.streamArray("train_images") { _, piece in streamed += piece }
                XCTAssertEqual(streamed, images)
                XCTAssertEqual(streamedHeader, header)
                XCTAssertEqual(try archive.header("train_labels").shape, [4, 1])
            }
        }
    }

    func testMalformedArchives() throws {
        let good = zipArchive([("train_images.npy", npyBytes(descr: "|u1", shape: [2, 2, 2], data: Array(repeating: 7, count: 8)), true)])
        let path = directory + "/bad.npz"
        writeBytes(path, Array("not a zip".utf8))
        assertImportError(.badSignature, [path, "not a zip"]) { _ = try NPZArchive(path: path) }
        writeBytes(path, Array(good[..<(good.count - 10)]))
        assertImportError(.truncated, [path, "truncated"]) { _ = try NPZArchive(path: path) }
        // CRC mismatch: change the stored CRC in the central directory.
        var badCRC = good
        let directoryOffset = Int(badCRC[badCRC.count - 6]) | Int(badCRC[badCRC.count - 5]) << 8
        badCRC[directoryOffset + 16] ^= 0xFF
        writeBytes(path, badCRC)
        assertImportError(.checksumMismatch, [path, "train_images.npy", "CRC32"]) { _ = try NPZArchive(path: path).readArray("train_images") }
        // Corrupt deflate data.
        var corrupt = good
        for i in 60..<70 { corrupt[i] = 0xFF }
        writeBytes(path, corrupt)
        assertImportError(.corrupt, [path, "train_images.npy"]) { _ = try NPZArchive(path: path).readArray("train_images") }
        // The header announces more data than the member holds.
        writeBytes(path, zipArchive([("a.npy", npyBytes(descr: "|u1", shape: [3, 3], data: [1, 2, 3]), false)]))
        assertImportError(.corrupt, ["a.npy", "holds"]) { _ = try NPZArchive(path: path).readArray("a") }
        // Unsupported dtypes and orders, a missing array.
        writeBytes(path, zipArchive([("a.npy", npyBytes(descr: ">i4", shape: [1], data: [0, 0, 0, 1]), false),
                                     ("b.npy", npyBytes(descr: "<U3", shape: [1], data: Array(repeating: 0, count: 12)), false),
                                     ("c.npy", npyBytes(descr: "|u1", shape: [2, 2], data: [1, 2, 3, 4], fortran: true), false),
                                     ("d.npy", Array("garbage-garbage".utf8), false)]))
        let archive = try NPZArchive(path: path)
        assertImportError(.unsupported, ["a.npy", "big-endian"]) { _ = try archive.readArray("a") }
        assertImportError(.unsupported, ["b.npy", "<U3"]) { _ = try archive.readArray("b") }
        assertImportError(.unsupported, ["c.npy", "Fortran"]) { _ = try archive.header("c") }
        assertImportError(.badSignature, ["d.npy", "NUMPY"]) { _ = try archive.header("d") }
        assertImportError(.invalidInput, ["no array 'zz'", "a, b, c, d"]) { _ = try archive.readArray("zz") }
    }

    /// `numpy.savez_compressed` (numpy 2.x) output: MedMNIST-style RGB splits (3, 2, 1
    /// images of 2×2×3, labels (N, 1) uint8), and `numpy.savez` (stored) with a greyscale
    /// (2, 3, 2) image array, int64 (N,) labels and an extra float array.
    func testNumpyWrittenArchivesImportAsMedMNIST() throws {
        let compressedPath = directory + "/rgb.npz", storedPath = directory + "/grey.npz"
        writeBytes(compressedPath, [UInt8](Data(base64Encoded: numpyCompressedNPZ, options: .ignoreUnknownCharacters)!))
        writeBytes(storedPath, [UInt8](Data(base64Encoded: numpyStoredNPZ, options: .ignoreUnknownCharacters)!))
        let archive = try NPZArchive(path: compressedPath)
        XCTAssertEqual(Set(archive.arrayNames), ["train_images", "train_labels", "val_images", "val_labels", "test_images", "test_labels"])
        XCTAssertEqual(try archive.header("train_labels").shape, [3, 1])

        let out = directory + "/rgb"
        let splits = try MedMNISTImporter.importNPZ(path: compressedPath, outputDirectory: out, classNames: ["adipose", "stroma", "tumour"])
        XCTAssertEqual(splits.map(\.split), ["train", "val", "test"])
        XCTAssertEqual(splits.map(\.count), [3, 2, 1])
        let train = try DatasetFile(path: out + "/train.cds")
        XCTAssertEqual([train.height, train.width, train.channels, train.count], [2, 2, 3, 3])
        XCTAssertEqual(train.classNames, ["adipose", "stroma", "tumour"])
        XCTAssertEqual(train.labels, [0, 2, 1])
        XCTAssertEqual(Array(train.imageBytes(at: 0)), [106, 152, 249, 131, 184, 200, 0, 21, 253, 147, 202, 107])
        XCTAssertEqual(Array(train.imageBytes(at: 2)), [248, 26, 81, 218, 150, 66, 2, 191, 60, 129, 179, 90])
        let val = try DatasetFile(path: out + "/val.cds")
        XCTAssertEqual(val.labels, [1, 1]); XCTAssertEqual(val.split, "val")
        let test = try DatasetFile(path: out + "/test.cds")   // keeps the mapping alive while its bytes are read
        XCTAssertEqual(Array(test.imageBytes(at: 0)), [28, 119, 54, 0, 192, 233, 18, 116, 191, 165, 184, 184])

        // Without class names: "0" … "k-1" from the largest label; greyscale stays 1 channel.
        let greyOut = directory + "/grey"
        let grey = try MedMNISTImporter.importNPZ(path: storedPath, outputDirectory: greyOut)
        XCTAssertEqual(grey.map(\.split), ["train"])
        let file = try DatasetFile(path: greyOut + "/train.cds")
        XCTAssertEqual([file.height, file.width, file.channels], [3, 2, 1])
        XCTAssertEqual(file.classNames, ["0", "1"]); XCTAssertEqual(file.labels, [1, 0])
        XCTAssertEqual(Array(file.imageBytes(at: 1)), [6, 7, 8, 9, 10, 11])

        assertImportError(.invalidInput, ["rgb.npz", "train_labels.npy", "outside the 2 class names"]) {
            try MedMNISTImporter.importNPZ(path: compressedPath, outputDirectory: out, classNames: ["a", "b"])
        }
    }

    /// A label of 2⁴⁰ (or Int64.max) is refused before any class list is allocated.
    func testAHugeLabelIsRefusedBeforeAnyAllocation() throws {
        let path = directory + "/huge.npz"
        for label in [Int64(1) << 40, Int64.max] {
            var data = [UInt8]()
            for value in [Int64(0), label] { withUnsafeBytes(of: value.littleEndian) { data += $0 } }
            writeBytes(path, zipArchive([("train_images.npy", npyBytes(descr: "|u1", shape: [2, 1, 1], data: [0, 0]), true),
                                         ("train_labels.npy", npyBytes(descr: "<i8", shape: [2], data: data), true)]))
            assertImportError(.invalidInput, ["huge.npz", "train_labels.npy", "label \(label) of image 1",
                                              "more than the \(DatasetLimits.maxClasses)"]) {
                try MedMNISTImporter.importNPZ(path: path, outputDirectory: directory + "/o")
            }
        }
    }

    func testMedMNISTShapeErrors() throws {
        let path = directory + "/m.npz"
        func write(_ members: [(String, [UInt8])]) { writeBytes(path, zipArchive(members.map { ($0.0, $0.1, true) })) }
        write([("train_images.npy", npyBytes(descr: "|u1", shape: [2, 2, 2], data: Array(repeating: 0, count: 8))),
               ("train_labels.npy", npyBytes(descr: "|u1", shape: [2, 3], data: Array(repeating: 0, count: 6)))])
        assertImportError(.invalidInput, ["train_labels.npy", "multi-label"]) { try MedMNISTImporter.importNPZ(path: path, outputDirectory: directory + "/o") }
        write([("train_images.npy", npyBytes(descr: "<f4", shape: [1, 1, 1], data: Array(repeating: 0, count: 4))),
               ("train_labels.npy", npyBytes(descr: "|u1", shape: [1], data: [0]))])
        assertImportError(.invalidInput, ["train_images.npy", "uint8"]) { try MedMNISTImporter.importNPZ(path: path, outputDirectory: directory + "/o") }
        write([("train_images.npy", npyBytes(descr: "|u1", shape: [2, 1, 1], data: [0, 0])),
               ("train_labels.npy", npyBytes(descr: "|u1", shape: [3], data: [0, 0, 0]))])
        assertImportError(.invalidInput, ["3 labels for 2 images"]) { try MedMNISTImporter.importNPZ(path: path, outputDirectory: directory + "/o") }
        write([("images.npy", npyBytes(descr: "|u1", shape: [1], data: [0]))])
        assertImportError(.invalidInput, ["no train_images", "images"]) { try MedMNISTImporter.importNPZ(path: path, outputDirectory: directory + "/o") }
        write([("train_images.npy", npyBytes(descr: "|u1", shape: [1, 1, 1], data: [0]))])
        assertImportError(.invalidInput, ["no matching 'train_labels'"]) { try MedMNISTImporter.importNPZ(path: path, outputDirectory: directory + "/o") }
    }

    /// Many images streamed through small inflate pieces: image boundaries fall inside pieces.
    func testMedMNISTStreamingAcrossPieces() throws {
        let (n, h, w) = (300, 7, 5)
        let images: [UInt8] = (0..<(n * h * w * 3)).map { (i: Int) -> UInt8 in UInt8(truncatingIfNeeded: i * 7 + i / 11) }
        let labels: [UInt8] = (0..<n).map { (i: Int) -> UInt8 in UInt8(i % 4) }
        let path = directory + "/big.npz"
        writeBytes(path, zipArchive([("train_images.npy", npyBytes(descr: "|u1", shape: [n, h, w, 3], data: images), true),
                                     ("train_labels.npy", npyBytes(descr: "|u1", shape: [n, 1], data: labels), true)]))
        try MedMNISTImporter.importNPZ(path: path, outputDirectory: directory + "/big", pieceSize: 1000)
        let file = try DatasetFile(path: directory + "/big/train.cds")
        XCTAssertEqual(file.count, n)
        for i in [0, 1, 137, n - 1] {
            let size = h * w * 3
            let expected: [UInt8] = Array(images[(i * size)..<((i + 1) * size)])
            XCTAssertEqual(Array(file.imageBytes(at: i)), expected)
            XCTAssertEqual(file.label(at: i), i % 4)
        }
    }
}

let numpyCompressedNPZ = """
UEsDBC0AAAAIAAAAIQBN6XC8//////////8QABQAdHJhaW5faW1hZ2VzLm5weQEAEACkAAAAAAAAAG8AAAAAAAAAm+wX6hsQychQ
xlCtnpJanFykbqWgXlNqqK6joJ6WX1RSlJgXn1+UkgoSd0vMKU4FihdnJBakAvkaxjoKRmBkrKmjUKtABuDKmvGzeccJBtG/k09l
/1zZNbV82YMpa2KX9/2QCrw1zYlpv03j5igAUEsDBC0AAAAIAAAAIQA+1Bqj//////////8QABQAdHJhaW5fbGFiZWxzLm5weQEA
EACDAAAAAAAAAEkAAAAAAAAAm+wX6hsQychQxlCtnpJanFykbqWgXlNqqK6joJ6WX1RSlJgXn1+UkgoSd0vMKU4FihdnJBakAvka
xjoKhpo6CrUKZAMuBiZGAFBLAwQtAAAACAAAACEAyWHvNv//////////DgAUAHZhbF9pbWFnZXMubnB5AQAQAJgAAAAAAAAAYQAA
AAAAAACb7BfqGxDJyFDGUK2eklqcXKRupaBeU2qorqOgnpZfVFKUmBefX5SSChJ3S8wpTgWKF2ckFqQC+RpGOgoQZKypo1CrQAbg
cs3IS5ybNeO3HfuP1YrV/htUReIMp9af+wIAUEsDBC0AAAAIAAAAIQDCJqn8//////////8OABQAdmFsX2xhYmVscy5ucHkBABAA
ggAAAAAAAABIAAAAAAAAAJvsF+obEMnIUMZQrZ6SWpxcpG6loF5Taqiuo6Cell9UUpSYF59flJIKEndLzClOBYoXZyQWpAL5GkY6
CoaaOgq1CmQDLkZGAFBLAwQtAAAACAAAACEAMtPpX///////////DwAUAHRlc3RfaW1hZ2VzLm5weQEAEACMAAAAAAAAAFUAAAAA
AAAAm+wX6hsQychQxlCtnpJanFykbqWgXlNqqK6joJ6WX1RSlJgXn1+UkgoSd0vMKU4FihdnJBakAvkahjoKRmBkrKmjUKtABuCS
KTdjOPBSqGT/0h07AFBLAwQtAAAACAAAACEAoDeLKf//////////DwAUAHRlc3RfbGFiZWxzLm5weQEAEACBAAAAAAAAAEcAAAAA
AAAAm+wX6hsQychQxlCtnpJanFykbqWgXlNqqK6joJ6WX1RSlJgXn1+UkgoSd0vMKU4FihdnJBakAvkahjoKhpo6CrUKZAMuJgBQ
SwECLQMtAAAACAAAACEATelwvG8AAACkAAAAEAAAAAAAAAAAAAAAgAEAAAAAdHJhaW5faW1hZ2VzLm5weVBLAQItAy0AAAAIAAAA
IQA+1BqjSQAAAIMAAAAQAAAAAAAAAAAAAACAAbEAAAB0cmFpbl9sYWJlbHMubnB5UEsBAi0DLQAAAAgAAAAhAMlh7zZhAAAAmAAA
AA4AAAAAAAAAAAAAAIABPAEAAHZhbF9pbWFnZXMubnB5UEsBAi0DLQAAAAgAAAAhAMImqfxIAAAAggAAAA4AAAAAAAAAAAAAAIAB
3QEAAHZhbF9sYWJlbHMubnB5UEsBAi0DLQAAAAgAAAAhADLT6V9VAAAAjAAAAA8AAAAAAAAAAAAAAIABZQIAAHRlc3RfaW1hZ2Vz
Lm5weVBLAQItAy0AAAAIAAAAIQCgN4spRwAAAIEAAAAPAAAAAAAAAAAAAACAAfsCAAB0ZXN0X2xhYmVscy5ucHlQSwUGAAAAAAYA
BgBuAQAAgwMAAAAA
"""

let numpyStoredNPZ = """
UEsDBC0AAAAAAAAAIQD1zwrZ//////////8QABQAdHJhaW5faW1hZ2VzLm5weQEAEACMAAAAAAAAAIwAAAAAAAAAk05VTVBZAQB2
AHsnZGVzY3InOiAnfHUxJywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsIDMsIDIpLCB9ICAgICAgICAgICAg
ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAQIDBAUGBwgJCgtQSwMELQAAAAAAAAAhAHH7Oav/
/////////xAAFAB0cmFpbl9sYWJlbHMubnB5AQAQAJAAAAAAAAAAkAAAAAAAAACTTlVNUFkBAHYAeydkZXNjcic6ICc8aTgnLCAn
Zm9ydHJhbl9vcmRlcic6IEZhbHNlLCAnc2hhcGUnOiAoMiwpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg
ICAgICAgICAgICAgICAgICAgICAgICAgCgEAAAAAAAAAAAAAAAAAAABQSwMELQAAAAAAAAAhANZDSwX//////////wkAFABleHRy
YS5ucHkBABAAiAAAAAAAAACIAAAAAAAAAJNOVU1QWQEAdgB7J2Rlc2NyJzogJzxmNCcsICdmb3J0cmFuX29yZGVyJzogRmFsc2Us
ICdzaGFwZSc6ICgyLCksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg
ICAKAADAPwAAAMBQSwECLQMtAAAAAAAAACEA9c8K2YwAAACMAAAAEAAAAAAAAAAAAAAAgAEAAAAAdHJhaW5faW1hZ2VzLm5weVBL
AQItAy0AAAAAAAAAIQBx+zmrkAAAAJAAAAAQAAAAAAAAAAAAAACAAc4AAAB0cmFpbl9sYWJlbHMubnB5UEsBAi0DLQAAAAAAAAAh
ANZDSwWIAAAAiAAAAAkAAAAAAAAAAAAAAIABoAEAAGV4dHJhLm5weVBLBQYAAAAAAwADALMAAABjAgAAAAA=
"""
