@testable import Formats
import XCTest

/// Asserts that `body` throws an `InflateError` of `kind` whose text contains every fragment.
func assertInflateError(_ kind: InflateError.Kind, _ fragments: [String], file: StaticString = #filePath,
                        line: UInt = #line, _ body: () throws -> Void) {
    do {
        try body()
        XCTFail("expected an InflateError of kind \(kind)", file: file, line: line)
    } catch let error as InflateError {
        XCTAssertEqual(error.kind, kind, "\(error)", file: file, line: line)
        for fragment in fragments {
            XCTAssertTrue(error.description.contains(fragment), "'\(fragment)' not in: \(error)", file: file, line: line)
        }
    } catch {
        XCTFail("expected an InflateError, got \(error)", file: file, line: line)
    }
}

final class InflateTests: XCTestCase {
    func testInflateFormatsInPiecesAndErrors() throws {
        let data: [UInt8] = (0..<100_000).map { (i: Int) -> UInt8 in UInt8(truncatingIfNeeded: i * 31 + i / 97) }
        for format in [CompressedFormat.zlib, .gzip, .raw] {
            let compressed = Zlib.deflate(data, format: format)
            XCTAssertEqual(try Zlib.inflate(compressed, format: format, path: "x"), data)
            // Fed in 7-byte pieces, drained in 1000-byte pieces.
            let inflater = try Inflater(format: format, path: "x", outputChunk: 1000)
            var out: [UInt8] = []
            for start in stride(from: 0, to: compressed.count, by: 7) {
                try compressed[start..<min(start + 7, compressed.count)].withUnsafeBytes { piece in
                    try inflater.feed(piece) { out.append(contentsOf: $0) }
                }
            }
            try inflater.finish()
            XCTAssertEqual(out, data)
            // Truncated, corrupt, trailing bytes, wrong expected size.
            assertInflateError(.truncated, ["stream.bin", "truncated"]) {
                _ = try Zlib.inflate(Array(compressed.prefix(compressed.count / 2)), format: format, path: "stream.bin")
            }
            // (gzip reads trailing bytes as the next member's header, which is then invalid.)
            assertInflateError(.corrupt, ["stream.bin", format == .gzip ? "header" : "trailing"]) {
                _ = try Zlib.inflate(compressed + [1, 2, 3], format: format, path: "stream.bin")
            }
            assertInflateError(.truncated, ["expected"]) {
                _ = try Zlib.inflate(compressed, format: format, path: "stream.bin", expectedCount: data.count + 1)
            }
            assertInflateError(.corrupt, ["more than"]) {
                _ = try Zlib.inflate(compressed, format: format, path: "stream.bin", expectedCount: data.count - 1)
            }
        }
        // A flipped byte in the zlib/gzip trailer fails the check; in the header, the format.
        var zlib = Zlib.deflate(data, format: .zlib)
        zlib[zlib.count - 1] ^= 1
        assertInflateError(.checksumMismatch, ["data check"]) { _ = try Zlib.inflate(zlib, format: .zlib, path: "z") }
        var gzip = Zlib.deflate(data, format: .gzip)
        gzip[0] = 0
        assertInflateError(.corrupt, ["z.gz", "corrupt gzip"]) { _ = try Zlib.inflate(gzip, format: .gzip, path: "z.gz") }
        // Concatenated gzip members read as one stream, as gunzip does, also with zero
        // padding between and after them (as `gzip -d` and Python's gzip accept).
        let two = Zlib.deflate(Array(data[..<500]), format: .gzip) + Zlib.deflate(Array(data[500...]), format: .gzip)
        XCTAssertEqual(try Zlib.inflate(two, format: .gzip, path: "x"), data)
        let padded = Zlib.deflate(Array(data[..<500]), format: .gzip) + [0, 0, 0]
            + Zlib.deflate(Array(data[500...]), format: .gzip) + [0, 0]
        XCTAssertEqual(try Zlib.inflate(padded, format: .gzip, path: "x"), data)
        // Zero padding after a zlib stream is still trailing data.
        assertInflateError(.corrupt, ["z", "trailing"]) { _ = try Zlib.inflate(Zlib.deflate(data, format: .zlib) + [0], format: .zlib, path: "z") }
    }

    func testCRC32MatchesTheCheckValue() {
        // The CRC-32/ISO-HDLC check value of "123456789"; pieces continue the checksum.
        let digits = Array("123456789".utf8)
        XCTAssertEqual(Zlib.crc32(digits), 0xCBF4_3926)
        XCTAssertEqual(Zlib.crc32(Array(digits[4...]), initial: Zlib.crc32(Array(digits[..<4]))), 0xCBF4_3926)
        XCTAssertEqual(Zlib.crc32([UInt8]()), 0)
    }
}
