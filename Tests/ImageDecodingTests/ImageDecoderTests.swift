import Formats
@testable import ImageDecoding
import TestSupport
import XCTest

/// Asserts that `body` throws an `ImportError` of `kind` whose text contains every fragment.
func assertImportError(_ kind: ImportError.Kind, _ fragments: [String], file: StaticString = #filePath,
                       line: UInt = #line, _ body: () throws -> Void) {
    XCTAssertNil(importErrorMismatch(kind, fragments, body), file: file, line: line)
}

/// The committed fixtures of reference/make_image_fixtures.py: files and Pillow's pixels.
struct ImageFixtures {
    struct Case: Decodable {
        var file: String
        var width: Int
        var height: Int
        var pillow_mode: String
        var tolerance: Int
    }
    struct Refusal: Decodable {
        var file: String
        var kind: String
        var fragment: String
    }
    struct Manifest: Decodable {
        var generator: String
        var cases: [Case]
        var errors: [Refusal]
    }

    let folder: String
    let manifest: Manifest

    init() throws {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
        folder = url.path
        manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: url.appendingPathComponent("manifest.json")))
    }

    func path(_ name: String) -> String { folder + "/" + name }
    /// Pillow's `convert("RGB")` pixels of fixture `name`.
    func pillowPixels(_ name: String) -> [UInt8] { readBytes(path(name) + ".rgb") }
    /// Every image file of the fixtures, decodable or not.
    var imageFiles: [String] { manifest.cases.map(\.file) + manifest.errors.map(\.file) }
}

final class ImageDecoderTests: XCTestCase {
    /// Every decodable fixture equals Pillow's pixels: exactly for PNG and TIFF (JPEG-in-TIFF
    /// included), within the manifest's tolerance (one level) for JPEG files.
    func testEveryFixtureMatchesPillow() throws {
        let fixtures = try ImageFixtures()
        XCTAssertGreaterThanOrEqual(fixtures.manifest.cases.count, 30)
        var formats = Set<ImageFormat>()
        for fixture in fixtures.manifest.cases {
            let path = fixtures.path(fixture.file)
            let image = try ImageDecoder.decode(path: path)
            XCTAssertEqual([image.width, image.height], [fixture.width, fixture.height], fixture.file)
            let expected = fixtures.pillowPixels(fixture.file)
            XCTAssertEqual(image.pixels.count, expected.count, fixture.file)
            guard image.pixels.count == expected.count else { continue }
            let largest = zip(image.pixels, expected).map { abs(Int($0) - Int($1)) }.max() ?? 0
            let differing = zip(image.pixels, expected).filter { $0 != $1 }.count
            XCTAssertLessThanOrEqual(largest, fixture.tolerance,
                                     "\(fixture.file) (Pillow mode \(fixture.pillow_mode)): \(differing) samples differ, by up to \(largest)")
            if fixture.tolerance == 0 { XCTAssertEqual(image.pixels, expected, fixture.file) }
            if fixture.tolerance > 0 { print("\(fixture.file): \(differing) of \(expected.count) samples differ from Pillow's, by up to \(largest)") }
            formats.insert(try XCTUnwrap(ImageFormat(extension: (fixture.file as NSString).pathExtension)))
        }
        XCTAssertEqual(formats, Set(ImageFormat.allCases))
    }

    /// Files the libraries could decode but not to RGB exactly (CMYK, floating point,
    /// 16-bit grey + alpha) are refused as unsupported, naming the file and the reason.
    func testRefusedFixturesNameTheFileAndTheReason() throws {
        let fixtures = try ImageFixtures()
        XCTAssertFalse(fixtures.manifest.errors.isEmpty)
        for refusal in fixtures.manifest.errors {
            let path = fixtures.path(refusal.file)
            let kind = try XCTUnwrap(ImportError.Kind(rawValue: refusal.kind), refusal.file)
            assertImportError(kind, [path + ": ", refusal.fragment]) { _ = try ImageDecoder.decode(path: path) }
        }
    }

    /// The format comes from the content, not the name: a PNG named .tif decodes as PNG;
    /// bytes of no supported format are a `badSignature` that names the file.
    func testFormatIsRecognisedByContent() throws {
        let fixtures = try ImageFixtures()
        let png = readBytes(fixtures.path("rgb8.png"))
        let image = try png.withUnsafeBytes { try ImageDecoder.decode($0, path: "misnamed.tif") }
        XCTAssertEqual(image.pixels, fixtures.pillowPixels("rgb8.png"))
        for (bytes, format) in [(png, ImageFormat.png), (readBytes(fixtures.path("rgb444.jpg")), .jpeg),
                                (readBytes(fixtures.path("rgb8_raw.tif")), .tiff),
                                (readBytes(fixtures.path("grey16_bigendian.tif")), .tiff)] {
            XCTAssertEqual(bytes.withUnsafeBytes { ImageFormat(signature: $0) }, format)
        }
        XCTAssertEqual(ImageFormat(extension: "JPEG"), .jpeg)
        XCTAssertEqual(ImageFormat(extension: "Tif"), .tiff)
        XCTAssertNil(ImageFormat(extension: "bmp"))
        XCTAssertEqual(Set(ImageDecoder.extensions), ["png", "jpg", "jpeg", "tif", "tiff"])
        assertImportError(.badSignature, ["slides/a.tif: ", "not a PNG, JPEG or TIFF", "47 49 46 38", "says TIFF"]) {
            _ = try Array("GIF89a……".utf8).withUnsafeBytes { try ImageDecoder.decode($0, path: "slides/a.tif") }
        }
        assertImportError(.truncated, ["slides/b.png: ", "empty"]) {
            _ = try [UInt8]().withUnsafeBytes { try ImageDecoder.decode($0, path: "slides/b.png") }
        }
        assertImportError(.io, ["slides/none.png"]) { _ = try ImageDecoder.decode(path: "slides/none.png") }
    }

    /// A file cut short is refused in every format, naming the file (libjpeg would fill the
    /// missing rows with grey, libpng and libtiff report a read error).
    func testTruncatedFilesAreRefusedNamingTheFile() throws {
        let fixtures = try ImageFixtures()
        for name in ["rgb8.png", "rgb16.png", "rgb444.jpg", "progressive420.jpg", "rgb8_lzw.tif", "rgb8_raw.tif",
                     "ycbcr_jpeg.tif", "rgb8_tiled_20x13.tif"] {
            let bytes = readBytes(fixtures.path(name))
            let path = "cases/" + name
            let half = Array(bytes.prefix(bytes.count * 2 / 3))
            do {
                _ = try half.withUnsafeBytes { try ImageDecoder.decode($0, path: path) }
                XCTFail("\(name) cut to \(half.count) of \(bytes.count) bytes decoded")
            } catch let error as ImportError {
                XCTAssertTrue(error.description.hasPrefix(path + ": "), "\(error)")
                XCTAssertTrue([.truncated, .corrupt].contains(error.kind), "\(name): \(error)")
            }
        }
        // A JPEG that ends inside its entropy-coded data: libjpeg's "premature end" warning.
        let jpeg = readBytes(fixtures.path("rgb444.jpg"))
        assertImportError(.truncated, ["cut.jpg: ", "truncated JPEG", "Premature end"]) {
            _ = try Array(jpeg.prefix(jpeg.count - 40)).withUnsafeBytes { try ImageDecoder.decode($0, path: "cut.jpg") }
        }
    }

    /// Corrupt JPEG markers and data fail with libjpeg's reason instead of exiting the process.
    func testCorruptJPEGIsAnErrorNotAnExit() throws {
        let fixtures = try ImageFixtures()
        let jpeg = readBytes(fixtures.path("rgb420.jpeg"))
        // The first SOF0 marker's precision byte becomes 7: libjpeg refuses the header.
        let sof = try XCTUnwrap((0..<(jpeg.count - 1)).first { jpeg[$0] == 0xFF && jpeg[$0 + 1] == 0xC0 })
        var badHeader = jpeg
        badHeader[sof + 4] = 7
        assertImportError(.corrupt, ["bad.jpeg: ", "cannot decode the JPEG", "libjpeg"]) {
            _ = try badHeader.withUnsafeBytes { try ImageDecoder.decode($0, path: "bad.jpeg") }
        }
        // A stray marker in the scan (0xFF 0xD9 early): corrupt data, reported as such.
        let sos = try XCTUnwrap((0..<(jpeg.count - 1)).first { jpeg[$0] == 0xFF && jpeg[$0 + 1] == 0xDA })
        var badData = jpeg
        for i in (sos + 20)..<(sos + 60) { badData[i] = 0xFF }
        do {
            _ = try badData.withUnsafeBytes { try ImageDecoder.decode($0, path: "bad.jpeg") }
            XCTFail("a JPEG with 40 bytes of its scan overwritten decoded")
        } catch let error as ImportError {
            XCTAssertTrue(error.description.hasPrefix("bad.jpeg: "), "\(error)")
            XCTAssertTrue(error.description.contains("libjpeg: "), "\(error)")
        }
    }

    /// Corrupt TIFF structures fail with libtiff's captured message.
    func testCorruptTIFFNamesTheFileAndLibtiffsReason() throws {
        let fixtures = try ImageFixtures()
        let tiff = readBytes(fixtures.path("rgb8_raw.tif"))
        // The first IFD offset points past the end of the file.
        var badOffset = tiff
        badOffset[4] = 0xFF; badOffset[5] = 0xFF; badOffset[6] = 0xFF; badOffset[7] = 0x0F
        assertImportError(.corrupt, ["bad.tif: ", "cannot open the TIFF", "libtiff: "]) {
            _ = try badOffset.withUnsafeBytes { try ImageDecoder.decode($0, path: "bad.tif") }
        }
    }
}
