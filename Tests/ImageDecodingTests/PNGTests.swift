import Formats
@testable import ImageDecoding
import TestSupport
import XCTest

// PNG through libpng (Sources/CPNG, ImageDecoding's PNGDecoding): files made by the
// encoder below for every colour type, bit depth, filter and Adam7, PNGs written by PIL,
// and malformed files, which must fail with an `ImportError` naming the file.

/// The 8 bytes every PNG starts with.
let pngSignature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

/// One Adam7 pass: pixels (x0 + i·dx, y0 + j·dy).
struct Adam7Pass {
    var x0, y0, dx, dy: Int
    func size(_ width: Int, _ height: Int) -> (Int, Int) {
        (width > x0 ? (width - x0 + dx - 1) / dx : 0, height > y0 ? (height - y0 + dy - 1) / dy : 0)
    }
    static let passes = [Adam7Pass(x0: 0, y0: 0, dx: 8, dy: 8), Adam7Pass(x0: 4, y0: 0, dx: 8, dy: 8),
                         Adam7Pass(x0: 0, y0: 4, dx: 4, dy: 8), Adam7Pass(x0: 2, y0: 0, dx: 4, dy: 4),
                         Adam7Pass(x0: 0, y0: 2, dx: 2, dy: 4), Adam7Pass(x0: 1, y0: 0, dx: 2, dy: 2),
                         Adam7Pass(x0: 0, y0: 1, dx: 1, dy: 2)]
    static let none = [Adam7Pass(x0: 0, y0: 0, dx: 1, dy: 1)]
}

/// A small PNG encoder for tests: any colour type / bit depth given packed rows, a chosen
/// filter per row (cycling through all five by default), optional Adam7 interlacing, IDAT
/// split into pieces of `idatPiece` bytes.
struct TestPNGEncoder {
    var width: Int
    var height: Int
    var colorType: UInt8
    var bitDepth: UInt8
    var interlaced = false
    var palette: [UInt8]? = nil
    var transparency: [UInt8]? = nil
    var idatPiece = 1 << 20
    /// Filter type of row y of a pass (default: y mod 5, so every type appears).
    var filterForRow: (Int) -> UInt8 = { UInt8($0 % 5) }

    var channels: Int { [0: 1, 2: 3, 3: 1, 4: 2, 6: 4][Int(colorType)]! }
    var bitsPerPixel: Int { channels * Int(bitDepth) }
    var bpp: Int { max(1, bitsPerPixel / 8) }

    /// `sample(x, y, s)` gives sample s of pixel (x, y), already at the bit depth.
    func encode(sample: (Int, Int, Int) -> Int) -> [UInt8] {
        let passes = interlaced ? Adam7Pass.passes : Adam7Pass.none
        var raw: [UInt8] = []
        for pass in passes {
            let (w, h) = pass.size(width, height)
            guard w > 0 && h > 0 else { continue }
            let rowBytes = (w * bitsPerPixel + 7) / 8
            var previous = [UInt8](repeating: 0, count: rowBytes)
            for y in 0..<h {
                var row = [UInt8](repeating: 0, count: rowBytes)
                var bit = 0
                for x in 0..<w {
                    for s in 0..<channels {
                        let v = sample(pass.x0 + x * pass.dx, pass.y0 + y * pass.dy, s)
                        if bitDepth == 16 {
                            row[bit / 8] = UInt8(v >> 8); row[bit / 8 + 1] = UInt8(v & 0xFF)
                        } else if bitDepth == 8 {
                            row[bit / 8] = UInt8(v)
                        } else {
                            row[bit / 8] |= UInt8(v) << UInt8(8 - Int(bitDepth) - bit % 8)
                        }
                        bit += Int(bitDepth)
                    }
                }
                let type = filterForRow(y)
                raw.append(type)
                raw.append(contentsOf: Self.filter(row, previous: y == 0 ? nil : previous, bpp: bpp, type: type))
                previous = row
            }
        }
        let compressed = Zlib.deflate(raw, format: .zlib, level: 9)
        var png = pngSignature
        func be(_ v: Int) -> [UInt8] { [UInt8(v >> 24 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
        func chunk(_ type: String, _ data: [UInt8]) {
            let body = Array(type.utf8) + data
            png += be(data.count) + body + be(Int(Zlib.crc32(body)))
        }
        chunk("IHDR", be(width) + be(height) + [bitDepth, colorType, 0, 0, interlaced ? 1 : 0])
        chunk("tEXt", Array("Comment\u{0}test".utf8))
        if let palette { chunk("PLTE", palette) }
        if let transparency { chunk("tRNS", transparency) }
        var start = 0
        repeat {
            let end = min(compressed.count, start + idatPiece)
            chunk("IDAT", Array(compressed[start..<end]))
            start = end
        } while start < compressed.count
        chunk("IEND", [])
        return png
    }

    static func filter(_ row: [UInt8], previous: [UInt8]?, bpp: Int, type: UInt8) -> [UInt8] {
        var out = row
        for i in 0..<row.count {
            let a = i >= bpp ? Int(row[i - bpp]) : 0
            let b = previous.map { Int($0[i]) } ?? 0
            let c = i >= bpp ? (previous.map { Int($0[i - bpp]) } ?? 0) : 0
            let predictor: Int
            switch type {
            case 1: predictor = a
            case 2: predictor = b
            case 3: predictor = (a + b) / 2
            case 4:
                let p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c)
                predictor = pa <= pb && pa <= pc ? a : (pb <= pc ? b : c)
            default: predictor = 0
            }
            out[i] = row[i] &- UInt8(predictor)
        }
        return out
    }
}

/// Deterministic test pattern: sample s of pixel (x, y) at `depth` bits.
func patternSample(_ x: Int, _ y: Int, _ s: Int, depth: Int) -> Int {
    let v = (x * 37 + y * 101 + s * 59 + x * y * 13) & 0xFFFF
    return v & ((1 << depth) - 1)
}

final class PNGTests: XCTestCase {
    func decode(_ bytes: [UInt8], path: String = "test.png") throws -> RGBImage {
        try bytes.withUnsafeBytes { try ImageDecoder.decode($0, path: path) }
    }

    /// Every colour type at 8 and 16 bits, every filter, odd sizes, several IDAT pieces,
    /// with and without Adam7. 16-bit grey is clipped to 255 (Pillow's I;16 → RGB), other
    /// 16-bit samples keep their high byte.
    func testEncodedColourTypesFiltersAndInterlacing() throws {
        for interlaced in [false, true] {
            for (colorType, depths) in [(0, [1, 2, 4, 8, 16]), (2, [8, 16]), (4, [8, 16]), (6, [8, 16]), (3, [1, 2, 4, 8])] as [(UInt8, [UInt8])] {
                for depth in depths {
                    let (w, h) = (13, 11)
                    let paletteSize = colorType == 3 ? 1 << Int(depth) : 0
                    let palette: [UInt8]? = colorType == 3 ? (0..<(paletteSize * 3)).map { UInt8(($0 * 29 + 7) & 0xFF) } : nil
                    var encoder = TestPNGEncoder(width: w, height: h, colorType: colorType, bitDepth: depth,
                                                 interlaced: interlaced, palette: palette,
                                                 transparency: colorType == 3 ? [0, 128] : nil, idatPiece: 17)
                    encoder.filterForRow = { UInt8(($0 + Int(depth)) % 5) }
                    let png = encoder.encode { x, y, s in patternSample(x, y, s, depth: Int(depth)) }
                    let image = try decode(png)
                    XCTAssertEqual(image.width, w); XCTAssertEqual(image.height, h)
                    for y in 0..<h {
                        for x in 0..<w {
                            let o = (y * w + x) * 3
                            var expected: [UInt8]
                            func to8(_ v: Int) -> UInt8 {
                                depth == 16 ? (colorType == 0 ? UInt8(min(v, 255)) : UInt8(v >> 8))
                                    : depth == 8 ? UInt8(v) : UInt8(v * 255 / ((1 << Int(depth)) - 1))
                            }
                            switch colorType {
                            case 0, 4: let g = to8(patternSample(x, y, 0, depth: Int(depth))); expected = [g, g, g]
                            case 3:
                                let i = patternSample(x, y, 0, depth: Int(depth))
                                expected = Array(palette![(3 * i)..<(3 * i + 3)])
                            default: expected = (0..<3).map { to8(patternSample(x, y, $0, depth: Int(depth))) }
                            }
                            XCTAssertEqual(Array(image.pixels[o..<(o + 3)]), expected,
                                           "type \(colorType) depth \(depth) interlaced \(interlaced) pixel (\(x), \(y))")
                        }
                    }
                }
            }
        }
    }

    /// Each filter type alone, on a wide RGBA image (bpp 4) and a one-pixel-wide one.
    func testEachFilterAlone() throws {
        for filter in UInt8(0)...4 {
            for (w, h) in [(31, 7), (1, 9), (9, 1)] {
                var encoder = TestPNGEncoder(width: w, height: h, colorType: 6, bitDepth: 8)
                encoder.filterForRow = { _ in filter }
                let image = try decode(encoder.encode { x, y, s in patternSample(x, y, s, depth: 8) })
                let expected = (0..<(w * h)).flatMap { i in (0..<3).map { UInt8(patternSample(i % w, i / w, $0, depth: 8)) } }
                XCTAssertEqual(image.pixels, expected, "filter \(filter) \(w)×\(h)")
            }
        }
    }

    /// PNGs written by PIL 11 (`Image.save(…, "PNG")`, random 5×4 content, seed 7): one per
    /// mode L, LA, RGB, RGBA, P (4-bit), P with tRNS, 1 (1-bit), I;16; expected pixels are
    /// Pillow 13's `convert("RGB")` (for I;16: each value clipped to 255 and replicated).
    func testPILWrittenFiles() throws {
        for (name, _, _, base64, hex) in pilCases {
            let bytes = [UInt8](Data(base64Encoded: base64)!)
            let image = try decode(bytes, path: name)
            XCTAssertEqual(image.width, 5); XCTAssertEqual(image.height, 4)
            let expected = stride(from: 0, to: hex.count, by: 2).map { i -> UInt8 in
                let start = hex.index(hex.startIndex, offsetBy: i)
                return UInt8(hex[start..<hex.index(start, offsetBy: 2)], radix: 16)!
            }
            XCTAssertEqual(image.pixels, expected, name)
        }
    }

    func testFileDecodeAndHeader() throws {
        let directory = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/a.png"
        let png = TestPNGEncoder(width: 6, height: 3, colorType: 2, bitDepth: 8).encode { x, y, s in patternSample(x, y, s, depth: 8) }
        writeBytes(path, png)
        let image = try ImageDecoder.decode(path: path)
        XCTAssertEqual([image.width, image.height, image.pixels.count], [6, 3, 6 * 3 * 3])
        // The project's own PNGWriter output decodes to what was written.
        let pixels = (0..<(4 * 5 * 3)).map { UInt8(($0 * 7) & 0xFF) }
        XCTAssertEqual(try decode(PNGWriter.encode(pixels, width: 5, height: 4, channels: 3)).pixels, pixels)
    }

    // MARK: Malformed input

    func testMalformedFilesAreRejectedNamingTheFile() throws {
        let good = TestPNGEncoder(width: 8, height: 8, colorType: 2, bitDepth: 8).encode { x, y, s in patternSample(x, y, s, depth: 8) }
        let path = "slides/case 7.png"
        var badSignature = good; badSignature[1] = 0x51
        assertImportError(.badSignature, [path, "not a PNG"]) { _ = try decode(badSignature, path: path) }
        assertImportError(.badSignature, [path]) { _ = try decode(Array("GIF89a...".utf8), path: path) }

        // Flip one byte inside the IDAT payload: libpng inflates the chunk before it reaches
        // the CRC, so zlib reports the damage first.
        let idat = indexOfChunk("IDAT", in: good)!
        var badCRC = good; badCRC[idat + 10] ^= 0x40
        assertImportError(.corrupt, [path, "IDAT"]) { _ = try decode(badCRC, path: path) }
        // A flipped CRC byte alone is a checksum mismatch.
        let crcAt = idat + 8 + (Int(good[idat]) << 24 | Int(good[idat + 1]) << 16 | Int(good[idat + 2]) << 8 | Int(good[idat + 3]))
        var badCRCOnly = good; badCRCOnly[crcAt] ^= 1
        assertImportError(.checksumMismatch, [path, "IDAT", "CRC"]) { _ = try decode(badCRCOnly, path: path) }
        var badIHDR = good; badIHDR[20] ^= 1
        assertImportError(.checksumMismatch, [path, "IHDR"]) { _ = try decode(badIHDR, path: path) }

        // Cut inside IDAT, or drop IEND.
        assertImportError(.truncated, [path, "truncated"]) { _ = try decode(Array(good[..<(idat + 14)]), path: path) }
        assertImportError(.truncated, [path, "truncated"]) { _ = try decode(Array(good[..<(good.count - 12)]), path: path) }
        assertImportError(.truncated, [path]) { _ = try decode(Array(good[..<20]), path: path) }

        // A complete chunk structure whose zlib stream is cut short (CRCs recomputed).
        let short = TestPNGEncoder(width: 8, height: 8, colorType: 2, bitDepth: 8)
        var rows: [UInt8] = []
        for _ in 0..<4 { rows += [0] + [UInt8](repeating: 9, count: 24) }   // only half the rows
        let truncatedStream = rebuild(short, idat: Zlib.deflate(rows, format: .zlib))
        assertImportError(.truncated, [path, "Not enough image data"]) { _ = try decode(truncatedStream, path: path) }
        let garbage = rebuild(short, idat: [0x78, 0x9C, 0xFF, 0xFF, 0xFF, 0x00, 0x01, 0x02])
        assertImportError(.corrupt, [path, "IDAT"]) { _ = try decode(garbage, path: path) }

        // IHDR validation.
        assertImportError(.corrupt, [path, "IHDR", "bit depth"]) {
            _ = try decode(rebuild(TestPNGEncoder(width: 2, height: 2, colorType: 3, bitDepth: 16), idat: []), path: path)
        }
        assertImportError(.corrupt, [path, "IHDR", "color type"]) {
            _ = try decode(rebuild(TestPNGEncoder(width: 2, height: 2, colorType: 5, bitDepth: 8), idat: []), path: path)
        }
        assertImportError(.corrupt, [path, "IHDR", "width"]) {
            _ = try decode(rebuild(TestPNGEncoder(width: 0, height: 2, colorType: 2, bitDepth: 8), idat: []), path: path)
        }
        // A bad filter type byte.
        var badFilterRows: [UInt8] = []
        for _ in 0..<8 { badFilterRows += [7] + [UInt8](repeating: 1, count: 24) }
        assertImportError(.corrupt, [path, "filter"]) {
            _ = try decode(rebuild(short, idat: Zlib.deflate(badFilterRows, format: .zlib)), path: path)
        }
        // A palette image without PLTE. (An index past the palette is a benign error to
        // libpng: it decodes, as Pillow's own reader does.)
        let paletteRows = [UInt8]((0..<2).flatMap { _ in [0, 0, 5] })
        assertImportError(.corrupt, [path, "PLTE"]) {
            _ = try decode(rebuild(TestPNGEncoder(width: 2, height: 2, colorType: 3, bitDepth: 8), idat: Zlib.deflate(paletteRows, format: .zlib)), path: path)
        }
    }

    /// An unknown critical chunk is refused; an unknown ancillary one is skipped.
    func testUnknownChunks() throws {
        let good = TestPNGEncoder(width: 3, height: 3, colorType: 0, bitDepth: 8).encode { x, y, _ in x + y }
        let idat = indexOfChunk("IDAT", in: good)!
        func inserting(_ type: String) -> [UInt8] {
            let body = Array(type.utf8) + [1, 2]
            let crc = Zlib.crc32(body)
            let chunk: [UInt8] = [0, 0, 0, 2] + body + [UInt8(crc >> 24), UInt8(crc >> 16 & 0xFF), UInt8(crc >> 8 & 0xFF), UInt8(crc & 0xFF)]
            return Array(good[..<idat]) + chunk + Array(good[idat...])
        }
        XCTAssertEqual(try decode(inserting("zzZz")).pixels, try decode(good).pixels)
        assertImportError(.unsupported, ["ZZZZ", "critical"]) { _ = try decode(inserting("ZZZZ")) }
    }

    func indexOfChunk(_ type: String, in png: [UInt8]) -> Int? {
        var offset = 8
        while offset + 8 <= png.count {
            let length = Int(png[offset]) << 24 | Int(png[offset + 1]) << 16 | Int(png[offset + 2]) << 8 | Int(png[offset + 3])
            if String(decoding: png[(offset + 4)..<(offset + 8)], as: UTF8.self) == type { return offset }
            offset += 12 + length
        }
        return nil
    }

    /// The encoder's chunks around a given (possibly invalid) IDAT payload.
    func rebuild(_ encoder: TestPNGEncoder, idat: [UInt8]) -> [UInt8] {
        var png = pngSignature
        func be(_ v: Int) -> [UInt8] { [UInt8(v >> 24 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
        func chunk(_ type: String, _ data: [UInt8]) {
            let body = Array(type.utf8) + data
            png += be(data.count) + body + be(Int(Zlib.crc32(body)))
        }
        chunk("IHDR", be(encoder.width) + be(encoder.height) + [encoder.bitDepth, encoder.colorType, 0, 0, 0])
        if let palette = encoder.palette { chunk("PLTE", palette) }
        chunk("IDAT", idat)
        chunk("IEND", [])
        return png
    }
}

/// (mode, colour type, bit depth, base64 PNG, expected RGB bytes as hex).
let pilCases: [(String, Int, Int, String, String)] = [
    ("L", 0, 8, "iVBORw0KGgoAAAANSUhEUgAAAAUAAAAECAAAAABjWKqcAAAAIUlEQVR4nGN0OXDvNDNTY+qfS+qMB3l2RV1gDIlYr3UHAIJ3CqNWrxlVAAAAAElFTkSuQmCC",
     "444444040404e2e2e2adadadb0b0b0c5c5c5696969dedede7f7f7fd7d7d7c1c1c1cdcdcd878787e1e1e1b1b1b1545454acacac5b5b5b858585616161"),
    ("LA", 4, 8, "iVBORw0KGgoAAAANSUhEUgAAAAUAAAAECAQAAADsOj3LAAAAN0lEQVR4nAEsANP/AUQqwNDeYcsQA28CgUBlvvzp0h0n2QDBEs0Eh6fhTLH4ApNt3+LU8KTPsI/PWBcnwNyqcAAAAABJRU5ErkJggg==",
     "444444040404e2e2e2adadadb0b0b0c5c5c5696969dedede7f7f7fd7d7d7c1c1c1cdcdcd878787e1e1e1b1b1b1545454acacac5b5b5b858585616161"),
    ("RGB", 2, 8, "iVBORw0KGgoAAAANSUhEUgAAAAUAAAAECAIAAADJUWIXAAAAS0lEQVR4nAFAAL//AK/wiBPE5DI6GcKox/YpqASiUw4oLe+VMuHHWzv3ZAECUDHGSu0n6YDft4uoISLhAmkZ58MRT8dt+OaIkRfo+9xNH7yoagnfAAAAAElFTkSuQmCC",
     "aff08813c4e4323a19c2a8c7f629a85143963b70d3d06cfa970335b96736a1745c855dfab9ecd94e8eddda89170a8d43486e498059d134166ef17112"),
    ("RGBA", 6, 8, "iVBORw0KGgoAAAANSUhEUgAAAAUAAAAECAYAAABGM/VAAAAAX0lEQVR4nAFUAKv/AK/wiCoTxOT6MjoZW8Kox2v2KajaBKJTDkAoLe++lTLh6cdbOy33ZAHZAKF0XBKFXfoEuezZp06O3UzaiRf4AmkZ523DEU/ix2348OaIkc8X6PuP7agsDCqRjJEAAAAASUVORK5CYII=",
     "aff08813c4e4323a19c2a8c7f629a85143963b70d3d06cfa970335b96736a1745c855dfab9ecd94e8eddda89170a8d43486e498059d134166ef17112"),
    ("P", 3, 4, "iVBORw0KGgoAAAANSUhEUgAAAAUAAAAEBAMAAAC0HehzAAAAFVBMVEWP0sMsjpDPeixCb46vZblpTrR9H1mF44nGAAAAGElEQVR4nGNkjH/AGPrxFoMqqwLTu0AGACq9BO4+dEV0AAAAAElFTkSuQmCC",
     "8fd2c32c8e907d1f598fd2c3af65b9694eb4694eb4af65b97d1f59cf7a2ccf7a2c694eb48fd2c3694eb4cf7a2c2c8e90426f8e694eb47d1f59cf7a2c"),
    ("P_tRNS", 3, 4, "iVBORw0KGgoAAAANSUhEUgAAAAUAAAAEBAMAAAC0HehzAAAAFVBMVEWP0sMsjpDPeixCb46vZblpTrR9H1mF44nGAAAAA3RSTlP//wDXyg1BAAAAGElEQVR4nGNkjH/AGPrxFoMqqwLTu0AGACq9BO4+dEV0AAAAAElFTkSuQmCC",
     "8fd2c32c8e907d1f598fd2c3af65b9694eb4694eb4af65b97d1f59cf7a2ccf7a2c694eb48fd2c3694eb4cf7a2c2c8e90426f8e694eb47d1f59cf7a2c"),
    ("1bit", 0, 1, "iVBORw0KGgoAAAANSUhEUgAAAAUAAAAEAQAAAABuSMjtAAAAEElEQVR4nGOwYFjB8IMhAAAIEAIpSDeV4gAAAABJRU5ErkJggg==",
     "000000000000ffffffffffffffffffffffff000000ffffff000000ffffffffffffffffffffffffffffffffffff000000ffffff000000ffffff000000"),
    ("I16", 0, 16, "iVBORw0KGgoAAAANSUhEUgAAAAUAAAAEEAAAAAAzyHbfAAAAN0lEQVR4nAEsANP/AURHwMDe3svLAwMCgYFlZfz80tInJwHBxAwMurpaWtDQAVRXWFivryoq3NzeWBVJidPPHgAAAABJRU5ErkJggg==",
     "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
]
