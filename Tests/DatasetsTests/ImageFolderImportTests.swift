@testable import Datasets
import Formats
import Foundation
import TestSupport
import XCTest

/// `FolderImporter` on the published layouts, with the image fixtures of
/// reference/make_image_fixtures.py (read from the checkout by path, next to this suite)
/// and Pillow's pixels for them.
final class ImageFolderImportTests: XCTestCase {
    var directory = ""
    override func setUp() { directory = makeTemporaryDirectory() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: directory) }

    private func fixture(_ name: String) throws -> String {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../ImageDecodingTests/Fixtures/\(name)").standardized.path
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("no checkout at \(path)") }
        return path
    }

    /// Copies fixture `name` to `root/relative`, creating folders.
    private func place(_ name: String, at relative: String, under root: String) throws {
        let target = root + "/" + relative
        try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: try fixture(name), toPath: target)
    }

    /// NCT-CRC-HE-100K's layout (class folders of .tif) with every format mixed in: each
    /// image lands in the .cds as Pillow's RGB (exact for PNG and TIFF, ±1 for JPEG).
    func testNCTLayoutWithMixedFormatsEqualsPillow() throws {
        let root = directory + "/NCT-CRC-HE-100K"
        let layout: [(String, String, Int)] = [   // fixture, relative path, tolerance
            ("rgb8_lzw.tif", "ADI/ADI-AAAFLCLY.tif", 0), ("rgb444.jpg", "ADI/ADI-AAAMHQMK.jpg", 1),
            ("grey16.tif", "ADI/ADI-ZZZ.TIFF", 0), ("ycbcr_jpeg.tif", "TUM/TUM-AAAHNVXK.tif", 0),
            ("rgba16.png", "TUM/TUM-AAAWVDGE.png", 0), ("progressive420.jpg", "TUM/scanner 2/TUM-B.jpeg", 1),
        ]
        for (name, relative, _) in layout { try place(name, at: relative, under: root) }
        let out = directory + "/nct.cds"
        let summary = try FolderImporter.importFolder(root: root, output: out)
        XCTAssertEqual(summary.classNames, ["ADI", "TUM"])
        XCTAssertEqual(summary.classCounts, [3, 3])
        let file = try DatasetFile(path: out)
        XCTAssertEqual([file.count, file.height, file.width, file.channels], [6, 12, 16, 3])
        let sorted = layout.sorted { $0.1 < $1.1 }
        XCTAssertEqual(file.ids, sorted.map(\.1))
        XCTAssertEqual(file.labels, [0, 0, 0, 1, 1, 1])
        for (index, (name, relative, tolerance)) in sorted.enumerated() {
            let pillow = readBytes(try fixture(name) + ".rgb")
            let stored = Array(file.imageBytes(at: index))
            XCTAssertEqual(stored.count, pillow.count, relative)
            let largest = zip(stored, pillow).map { abs(Int($0) - Int($1)) }.max() ?? .max
            XCTAssertLessThanOrEqual(largest, tolerance, relative)
        }
    }

    /// BACH's `Photos/<class>/*.tif` with `--size`: a TIFF is resized exactly as the same
    /// pixels stored as PNG; the ground-truth table is checked against the folders.
    func testBACHLayoutIsResizedAndCheckedAgainstItsGroundTruth() throws {
        let photos = directory + "/ICIAR2018_BACH_Challenge/Photos"
        let images = [("Benign", "b001.tif", "rgb8_tiled_20x13.tif"), ("InSitu", "is001.tif", "rgb8_deflate.tiff"),
                      ("Invasive", "iv001.tif", "ycbcr_jpeg.tif"), ("Normal", "n001.tif", "rgb16_deflate.tif"),
                      ("Normal", "n002.tif", "rgb8_strips.tif")]
        for (label, name, source) in images { try place(source, at: label + "/" + name, under: photos) }
        let table = photos + "/" + BACHGroundTruth.fileName
        func writeTable(_ rows: [String]) { writeBytes(table, Array((rows.joined(separator: "\r\n") + "\r\n").utf8)) }
        writeTable(images.reversed().map { "\($0.1),\($0.0)" })

        let out = directory + "/bach.cds"
        let summary = try FolderImporter.importFolder(root: photos, output: out, size: 8)
        XCTAssertEqual(summary.classNames, ["Benign", "InSitu", "Invasive", "Normal"])
        XCTAssertEqual(summary.classCounts, [1, 1, 1, 2])
        XCTAssertEqual([summary.height, summary.width], [8, 8])
        XCTAssertEqual(try BACHGroundTruth.check(root: photos, classNames: summary.classNames,
                                                 files: try FolderImporter.scan(root: photos).files), 5)

        // The 20×13 TIFF goes through the resampler exactly like its Pillow pixels as a PNG.
        let asPNG = directory + "/png/Benign/b001.png"
        try FileManager.default.createDirectory(atPath: directory + "/png/Benign", withIntermediateDirectories: true)
        try PNGWriter.write(readBytes(try fixture("rgb8_tiled_20x13.tif") + ".rgb"), width: 20, height: 13, channels: 3, to: asPNG)
        try FolderImporter.importFolder(root: directory + "/png", output: directory + "/png.cds", size: 8)
        let fromTIFF = try DatasetFile(path: out), fromPNG = try DatasetFile(path: directory + "/png.cds")
        XCTAssertEqual(Array(fromTIFF.imageBytes(at: 0)), Array(fromPNG.imageBytes(at: 0)))

        // A header row and blank lines are fine; disagreements name the table's line or the image.
        writeTable(["image name,class", ""] + images.map { "\($0.1),\($0.0)" })
        XCTAssertEqual(try FolderImporter.importFolder(root: photos, output: out, size: 8).count, 5)
        writeTable(images.map { "\($0.1),\($0.1 == "is001.tif" ? "Invasive" : $0.0)" })
        assertImportError(.invalidInput, [table + ":2", "'is001.tif' is labelled Invasive but lies in InSitu/is001.tif"]) {
            try FolderImporter.importFolder(root: photos, output: out, size: 8)
        }
        writeTable(images.dropLast().map { "\($0.1),\($0.0)" })
        assertImportError(.invalidInput, [photos + "/Normal/n002.tif", "no row in microscopy_ground_truth.csv"]) {
            try FolderImporter.importFolder(root: photos, output: out, size: 8)
        }
        writeTable(images.map { "\($0.1),\($0.0)" } + ["b001.tif,Benign"])
        assertImportError(.invalidInput, [table + ":6", "listed twice (first on line 1)"]) {
            try FolderImporter.importFolder(root: photos, output: out, size: 8)
        }
        writeTable(images.map { "\($0.1),\($0.0)" } + ["x.tif,Stroma"])
        assertImportError(.invalidInput, [table + ":6", "class 'Stroma'"]) {
            try FolderImporter.importFolder(root: photos, output: out, size: 8)
        }
        // Without the table the folders alone label the images.
        try FileManager.default.removeItem(atPath: table)
        XCTAssertEqual(try FolderImporter.importFolder(root: photos, output: out, size: 8).classCounts, [1, 1, 1, 2])
    }
}
