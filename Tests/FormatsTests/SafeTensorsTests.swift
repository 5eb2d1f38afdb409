@testable import Formats
import Foundation
import Kernels
import TestSupport
import XCTest

final class SafeTensorsTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("safetensors-tests-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// Writes a file made of an 8-byte length, `header` (unpadded) and `data`.
    private func rawFile(_ name: String, header: String, data: [UInt8] = [],
                         announcedLength: UInt64? = nil) throws -> String {
        var bytes: [UInt8] = []
        let headerBytes = Array(header.utf8)
        withUnsafeBytes(of: (announcedLength ?? UInt64(headerBytes.count)).littleEndian) { bytes += $0 }
        bytes += headerBytes + data
        let file = path(name)
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        return file
    }

    /// Asserts that opening `file` throws a `SafeTensorsError` of `kind` whose text names the file.
    private func assertOpenFails(_ file: String, _ kind: SafeTensorsError.Kind,
                                 file sourceFile: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try SafeTensorsFile(path: file), file: sourceFile, line: line) { error in
            guard let error = error as? SafeTensorsError else {
                return XCTFail("not a SafeTensorsError: \(error)", file: sourceFile, line: line)
            }
            XCTAssertEqual(error.kind, kind, "\(error)", file: sourceFile, line: line)
            XCTAssertEqual(error.path, file, file: sourceFile, line: line)
            XCTAssertTrue(error.description.contains(file), "\(error)", file: sourceFile, line: line)
        }
    }

    private func assertFails<T>(_ kind: SafeTensorsError.Kind, _ body: @autoclosure () throws -> T,
                                file sourceFile: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: sourceFile, line: line) { error in
            XCTAssertEqual((error as? SafeTensorsError)?.kind, kind, "\(error)", file: sourceFile, line: line)
        }
    }

    // MARK: Round trip

    func testRoundTrip() throws {
        let file = path("round.safetensors")
        let weights: [Float] = [1, -2, 3.5, .pi, -0.0, 1e-30]
        let tensor = Tensor(shape: [2, 2], values: [9, 8, 7, 6])
        let pointed: [Float] = [0.25, 0.5, 0.75]
        var writer = SafeTensorsWriter(metadata: ["note": "quote \" and \\ and \n"])
        writer.add("b.weight", shape: [2, 3], floats: weights)
        writer.add("a.tensor", tensor: tensor)
        writer.add("scalar", shape: [], floats: [42])
        writer.add("empty", shape: [0, 3], floats: [])
        writer.add("ids", shape: [3], int64s: [-1, 0, 1 << 40])
        writer.add("small", shape: [2], int32s: [7, -7])
        try pointed.withUnsafeBufferPointer { buffer in
            writer.add("pointed", shape: [3], pointer: buffer.baseAddress!, count: 3)
            try writer.write(to: file)
        }

        let st = try SafeTensorsFile(path: file)
        XCTAssertEqual(st.names, ["a.tensor", "b.weight", "empty", "ids", "pointed", "scalar", "small"])
        XCTAssertEqual(st.metadata, ["format": "pt", "note": "quote \" and \\ and \n"])
        XCTAssertEqual(try st.floats("b.weight"), weights)
        XCTAssertEqual(try st.info("b.weight").shape, [2, 3])
        XCTAssertEqual(try st.info("b.weight").dtype, .f32)
        XCTAssertEqual(try st.tensor("a.tensor").array, [9, 8, 7, 6])
        XCTAssertEqual(try st.tensor("a.tensor").shape, [2, 2])
        XCTAssertEqual(try st.floats("scalar"), [42])
        XCTAssertEqual(try st.info("scalar").shape, [])
        XCTAssertEqual(try st.floats("empty"), [])
        XCTAssertEqual(try st.ints("ids"), [-1, 0, 1 << 40])
        XCTAssertEqual(try st.info("ids").dtype, .i64)
        XCTAssertEqual(try st.ints("small"), [7, -7])
        XCTAssertEqual(try st.info("small").dtype, .i32)
        XCTAssertEqual(try st.floats("pointed"), pointed)

        var destination = [Float](repeating: 0, count: 6)
        try destination.withUnsafeMutableBufferPointer {
            try st.read("b.weight", into: $0.baseAddress!, count: 6)
        }
        XCTAssertEqual(destination, weights)

        // The data section starts on an 8-byte boundary and no temporary file is left behind.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: file))
        let headerLength = bytes.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        XCTAssertEqual((8 + headerLength) % 8, 0)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["round.safetensors"])
    }

    func testWriteReplacesAnExistingFile() throws {
        let file = path("replace.safetensors")
        var first = SafeTensorsWriter()
        first.add("x", shape: [1], floats: [1])
        try first.write(to: file)
        var second = SafeTensorsWriter()
        second.add("y", shape: [2], floats: [2, 3])
        try second.write(to: file)
        let st = try SafeTensorsFile(path: file)
        XCTAssertEqual(st.names, ["y"])
        XCTAssertEqual(try st.floats("y"), [2, 3])
    }

    func testWriteIntoMissingDirectoryThrows() {
        var writer = SafeTensorsWriter()
        writer.add("x", shape: [1], floats: [1])
        let file = path("no/such/dir/x.safetensors")
        XCTAssertThrowsError(try writer.write(to: file)) { error in
            XCTAssertEqual((error as? SafeTensorsError)?.kind, .io)
            XCTAssertTrue("\(error)".contains(file))
        }
    }

    // MARK: Conversions

    func testHalfConversionMatchesKnownBitPatterns() {
        let cases: [(UInt16, Float)] = [
            (0x0000, 0), (0x3C00, 1), (0xC000, -2), (0x3555, 0.333251953125), (0x7BFF, 65504),
            (0x0400, 0x1p-14),                     // smallest normal
            (0x0001, 0x1p-24),                     // smallest subnormal
            (0x03FF, 1023 * 0x1p-24),              // largest subnormal
            (0x8001, -0x1p-24),
            (0x7C00, .infinity), (0xFC00, -.infinity),
        ]
        for (bits, expected) in cases {
            XCTAssertEqual(floatFromHalfBits(bits), expected, "half 0x\(String(bits, radix: 16))")
        }
        let negativeZero = floatFromHalfBits(0x8000)
        XCTAssertEqual(negativeZero, 0)
        XCTAssertEqual(negativeZero.sign, .minus)
        XCTAssertTrue(floatFromHalfBits(0x7E00).isNaN)
        XCTAssertTrue(floatFromHalfBits(0xFC01).isNaN)
    }

    func testBFloat16ConversionMatchesKnownBitPatterns() {
        let cases: [(UInt16, Float)] = [
            (0x0000, 0), (0x3F80, 1), (0xC040, -3), (0x3EAB, 0.333984375),
            (0x7F7F, Float(bitPattern: 0x7F7F_0000)), (0x0001, Float(bitPattern: 0x0001_0000)),
            (0x7F80, .infinity), (0xFF80, -.infinity),
        ]
        for (bits, expected) in cases {
            XCTAssertEqual(floatFromBFloat16Bits(bits), expected, "bf16 0x\(String(bits, radix: 16))")
        }
        XCTAssertTrue(floatFromBFloat16Bits(0x7FC0).isNaN)
    }

    func testHalfAndBFloat16TensorsInAFile() throws {
        let halves: [UInt16] = [0x3C00, 0x0001, 0xFC00]
        let brains: [UInt16] = [0x3F80, 0xC040]
        let data = halves.flatMap { [UInt8($0 & 0xff), UInt8($0 >> 8)] } + brains.flatMap { [UInt8($0 & 0xff), UInt8($0 >> 8)] }
        let file = try rawFile("half.safetensors", header: """
            {"h":{"dtype":"F16","shape":[3],"data_offsets":[0,6]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[6,10]}}
            """, data: data)
        let st = try SafeTensorsFile(path: file)
        XCTAssertEqual(try st.floats("h"), [1, 0x1p-24, -.infinity])
        XCTAssertEqual(try st.floats("b"), [1, -3])
    }

    // MARK: A file written by the Python `safetensors` package

    /// `safetensors.torch.save` (safetensors 0.8.0, torch 2.15) of
    /// i64 [[-1,2],[3,9000000000]], f64 [0.1,-1e300], f32 [[1.5,-2,3.25],[0,1e-3,-7]], scalar f32 4.0,
    /// i32 [7,-8], bf16 [1,-3,0.333984375], f16 [1,-2,65504,2^-24,inf], u8 [0,255], BOOL [T,F,T],
    /// metadata {"source": "python"}. Its data is not aligned (the F16 tensor starts at byte 90).
    private static let pythonFile = """
        OAIAAAAAAAB7Il9fbWV0YWRhdGFfXyI6eyJzb3VyY2UiOiJweXRob24ifSwiaTY0Ijp7ImR0eXBlIjoiSTY0Iiwic2hhcGUi\
        OlsyLDJdLCJkYXRhX29mZnNldHMiOlswLDMyXX0sImY2NCI6eyJkdHlwZSI6IkY2NCIsInNoYXBlIjpbMl0sImRhdGFfb2Zm\
        c2V0cyI6WzMyLDQ4XX0sImYzMiI6eyJkdHlwZSI6IkYzMiIsInNoYXBlIjpbMiwzXSwiZGF0YV9vZmZzZXRzIjpbNDgsNzJd\
        fSwic2NhbGFyIjp7ImR0eXBlIjoiRjMyIiwic2hhcGUiOltdLCJkYXRhX29mZnNldHMiOls3Miw3Nl19LCJpMzIiOnsiZHR5\
        cGUiOiJJMzIiLCJzaGFwZSI6WzJdLCJkYXRhX29mZnNldHMiOls3Niw4NF19LCJiZjE2Ijp7ImR0eXBlIjoiQkYxNiIsInNo\
        YXBlIjpbM10sImRhdGFfb2Zmc2V0cyI6Wzg0LDkwXX0sImYxNiI6eyJkdHlwZSI6IkYxNiIsInNoYXBlIjpbNV0sImRhdGFf\
        b2Zmc2V0cyI6WzkwLDEwMF19LCJ1OCI6eyJkdHlwZSI6IlU4Iiwic2hhcGUiOlsyXSwiZGF0YV9vZmZzZXRzIjpbMTAwLDEw\
        Ml19LCJmbGFnIjp7ImR0eXBlIjoiQk9PTCIsInNoYXBlIjpbM10sImRhdGFfb2Zmc2V0cyI6WzEwMiwxMDVdfX0gICAgICAg\
        //////////8CAAAAAAAAAAMAAAAAAAAAABpxGAIAAACamZmZmZm5P5x1AIg85Df+AADAPwAAAMAAAFBAAAAAAG8SgzoAAODA\
        AACAQAcAAAD4////gD9AwKs+ADwAwP97AQAAfAD/AQAB
        """

    func testReadsAFileWrittenByPythonSafetensors() throws {
        let file = path("python.safetensors")
        try XCTUnwrap(Data(base64Encoded: Self.pythonFile)).write(to: URL(fileURLWithPath: file))
        let st = try SafeTensorsFile(path: file)
        XCTAssertEqual(st.names, ["bf16", "f16", "f32", "f64", "flag", "i32", "i64", "scalar", "u8"])
        XCTAssertEqual(st.metadata, ["source": "python"])
        XCTAssertEqual(try st.ints("i64"), [-1, 2, 3, 9_000_000_000])
        XCTAssertEqual(try st.floats("f64"), [Float(0.1), -.infinity])  // -1e300 overflows Float
        XCTAssertEqual(try st.floats("f32"), [1.5, -2, 3.25, 0, 1e-3, -7])
        XCTAssertEqual(try st.info("f32").shape, [2, 3])
        XCTAssertEqual(try st.floats("scalar"), [4])
        XCTAssertEqual(try st.info("scalar").shape, [])
        XCTAssertEqual(try st.ints("i32"), [7, -8])
        XCTAssertEqual(try st.floats("bf16"), [1, -3, 0.333984375])
        XCTAssertEqual(try st.floats("f16"), [1, -2, 65504, 0x1p-24, .infinity])
        XCTAssertEqual(try st.ints("u8"), [0, 255])
        XCTAssertEqual(try st.ints("flag"), [1, 0, 1])
        XCTAssertEqual(try st.info("flag").dtype, .bool)
    }

    // MARK: Validation errors

    func testMissingFile() {
        assertOpenFails(path("absent.safetensors"), .io)
    }

    func testFileShorterThanTheLengthPrefix() throws {
        let file = path("short.safetensors")
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: file))
        assertOpenFails(file, .truncated)
        let empty = path("empty.safetensors")
        try Data().write(to: URL(fileURLWithPath: empty))
        assertOpenFails(empty, .truncated)
    }

    func testHeaderRunningPastTheEndIsTruncated() throws {
        let header = #"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
        let file = try rawFile("trunc.safetensors", header: header, announcedLength: UInt64(header.utf8.count + 50))
        assertOpenFails(file, .truncated)
    }

    func testTruncatedDataIsOutOfRange() throws {
        let file = try rawFile("trunc-data.safetensors",
                               header: #"{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
                               data: [UInt8](repeating: 0, count: 10))
        assertOpenFails(file, .offsetsOutOfRange)
    }

    func testHeaderLengthOverTheLimit() throws {
        let file = try rawFile("huge.safetensors", header: "{}", announcedLength: 200_000_000)
        assertOpenFails(file, .headerTooLarge)
        let absurd = try rawFile("absurd.safetensors", header: "{}", announcedLength: UInt64.max)
        assertOpenFails(absurd, .headerTooLarge)
    }

    func testBadJSON() throws {
        assertOpenFails(try rawFile("bad1.safetensors", header: #"{"x": {"dtype": "F32""#), .badHeader)
        assertOpenFails(try rawFile("bad2.safetensors", header: "[1, 2]"), .badHeader)
        assertOpenFails(try rawFile("bad3.safetensors", header: #"{"x": 3}"#), .badHeader)
        assertOpenFails(try rawFile("bad4.safetensors",
                                    header: #"{"x":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#,
                                    data: [0, 0, 0, 0]), .badHeader)
        assertOpenFails(try rawFile("bad5.safetensors",
                                    header: #"{"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#,
                                    data: [0, 0, 0, 0]), .badHeader)
        assertOpenFails(try rawFile("bad6.safetensors",
                                    header: #"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0]}}"#,
                                    data: [0, 0, 0, 0]), .badHeader)
        assertOpenFails(try rawFile("bad7.safetensors", header: #"{"__metadata__":{"epoch":3}}"#), .badHeader)
    }

    func testUnknownDType() throws {
        let file = try rawFile("dtype.safetensors",
                               header: #"{"x":{"dtype":"Q4","shape":[2],"data_offsets":[0,1]}}"#, data: [0])
        assertOpenFails(file, .unknownDType)
    }

    func testShapeSizeMismatch() throws {
        let file = try rawFile("size.safetensors",
                               header: #"{"x":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}}"#,
                               data: [UInt8](repeating: 0, count: 16))
        assertOpenFails(file, .sizeMismatch)
        let overflow = try rawFile("overflow.safetensors",
                                   header: #"{"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}"#,
                                   data: [0, 0, 0, 0])
        assertOpenFails(overflow, .sizeMismatch)
    }

    func testOffsetsOutOfRange() throws {
        let past = try rawFile("past.safetensors",
                               header: #"{"x":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}"#,
                               data: [UInt8](repeating: 0, count: 16))
        assertOpenFails(past, .offsetsOutOfRange)
        let reversed = try rawFile("reversed.safetensors",
                                   header: #"{"x":{"dtype":"U8","shape":[0],"data_offsets":[8,4]}}"#,
                                   data: [UInt8](repeating: 0, count: 16))
        assertOpenFails(reversed, .offsetsOutOfRange)
        let negative = try rawFile("negative.safetensors",
                                   header: #"{"x":{"dtype":"U8","shape":[4],"data_offsets":[-4,0]}}"#,
                                   data: [UInt8](repeating: 0, count: 16))
        assertOpenFails(negative, .offsetsOutOfRange)
    }

    func testOverlappingRanges() throws {
        let file = try rawFile("overlap.safetensors", header: """
            {"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}
            """, data: [UInt8](repeating: 0, count: 12))
        assertOpenFails(file, .overlap)
        // Gaps and empty tensors are fine.
        let gaps = try rawFile("gaps.safetensors", header: """
            {"a":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},"b":{"dtype":"F32","shape":[0],"data_offsets":[9,9]}}
            """, data: [UInt8](repeating: 0, count: 16))
        XCTAssertEqual(try SafeTensorsFile(path: gaps).names, ["a", "b"])
    }

    func testCallerErrors() throws {
        var writer = SafeTensorsWriter()
        writer.add("f", shape: [2], floats: [1, 2])
        writer.add("i", shape: [2], int64s: [1, 2])
        let file = path("caller.safetensors")
        try writer.write(to: file)
        let st = try SafeTensorsFile(path: file)
        assertFails(.missingTensor, try st.floats("nope"))
        assertFails(.missingTensor, try st.info("nope"))
        assertFails(.wrongDType, try st.floats("i"))
        assertFails(.wrongDType, try st.ints("f"))
        var buffer = [Float](repeating: 0, count: 3)
        assertFails(.countMismatch, try buffer.withUnsafeMutableBufferPointer {
            try st.read("f", into: $0.baseAddress!, count: 3)
        })
        XCTAssertTrue(st.contains("f"))
        XCTAssertFalse(st.contains("nope"))
    }
}
