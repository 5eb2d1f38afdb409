@testable import Datasets
@testable import Formats
import TestSupport
import XCTest

final class ImporterTests: XCTestCase {
    var directory = ""
    override func setUp() { directory = makeTemporaryDirectory() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: directory) }

    // MARK: Image folders

    func writePNG(_ path: String, width: Int, height: Int, rgb: (Int, Int) -> [UInt8]) {
        try! FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        var pixels: [UInt8] = []
        for y in 0..<height { for x in 0..<width { pixels += rgb(x, y) } }
        let png = PNGWriter.encode(pixels, width: width, height: height, channels: 3)
        writeBytes(path, png)
    }

    func testFolderImport() throws {
        let root = directory + "/folder"
        func pattern(_ seed: Int) -> (Int, Int) -> [UInt8] { { x, y in [UInt8((x * 10 + seed) & 0xFF), UInt8(y * 20), UInt8(seed)] } }
        writePNG(root + "/tumour/b.png", width: 4, height: 3, rgb: pattern(1))
        writePNG(root + "/tumour/a.PNG", width: 4, height: 3, rgb: pattern(2))
        writePNG(root + "/normal/x/deep.png", width: 4, height: 3, rgb: pattern(3))
        writePNG(root + "/normal/c.png", width: 4, height: 3, rgb: pattern(4))
        writeBytes(root + "/normal/notes.txt", Array("not an image".utf8))
        writeBytes(root + "/normal/.DS_Store", [0, 1, 2])
        writeBytes(root + "/README.md", Array("top-level files are ignored".utf8))

        let out = directory + "/folder.cds"
        let summary = try FolderImporter.importFolder(root: root, output: out)
        XCTAssertEqual(summary.classNames, ["normal", "tumour"])
        XCTAssertEqual(summary.classCounts, [2, 2])
        let file = try DatasetFile(path: out)
        XCTAssertEqual([file.count, file.height, file.width, file.channels], [4, 3, 4, 3])
        XCTAssertEqual(file.ids, ["normal/c.png", "normal/x/deep.png", "tumour/a.PNG", "tumour/b.png"])
        XCTAssertEqual(file.labels, [0, 0, 1, 1])
        let expected = (0..<3).flatMap { y in (0..<4).flatMap { x in pattern(2)(x, y) } }
        XCTAssertEqual(Array(file.imageBytes(at: 2)), expected)

        // A different size is an error naming the file, unless --size resizes everything.
        writePNG(root + "/tumour/z-large.png", width: 8, height: 6, rgb: { _, _ in [10, 20, 30] })
        assertImportError(.invalidInput, [root + "/tumour/z-large.png", "8×6", "--size"]) {
            try FolderImporter.importFolder(root: root, output: out)
        }
        let resized = try FolderImporter.importFolder(root: root, output: out, size: 4)
        XCTAssertEqual([resized.height, resized.width, resized.count], [4, 4, 5])
        let file4 = try DatasetFile(path: out)
        XCTAssertEqual(Array(file4.imageBytes(at: 4)), [UInt8]((0..<16).flatMap { _ in [10, 20, 30] as [UInt8] }))

        // Unsupported formats, undecodable files and empty classes name the file.
        writeBytes(root + "/tumour/photo.bmp", [0x42, 0x4D, 0])
        assertImportError(.invalidInput, [root + "/tumour/photo.bmp", "BMP", "PNG, JPEG or TIFF"]) {
            try FolderImporter.importFolder(root: root, output: out, size: 4)
        }
        try FileManager.default.removeItem(atPath: root + "/tumour/photo.bmp")
        writeBytes(root + "/tumour/photo.jpg", [0xFF, 0xD8, 0xFF])
        assertImportError(.truncated, [root + "/tumour/photo.jpg", "truncated JPEG"]) {
            try FolderImporter.importFolder(root: root, output: out, size: 4)
        }
        try FileManager.default.removeItem(atPath: root + "/tumour/photo.jpg")
        writeBytes(root + "/tumour/broken.png", [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0])   // a PNG signature, then nothing
        assertImportError(.truncated, [root + "/tumour/broken.png"]) {
            try FolderImporter.importFolder(root: root, output: out, size: 4)
        }
        try FileManager.default.removeItem(atPath: root + "/tumour/broken.png")
        try FileManager.default.createDirectory(atPath: root + "/empty", withIntermediateDirectories: true)
        assertImportError(.invalidInput, [root + "/empty", "no PNG, JPEG or TIFF images"]) {
            try FolderImporter.importFolder(root: root, output: out, size: 4)
        }
        assertImportError(.io, [directory + "/missing", "not a directory"]) {
            try FolderImporter.importFolder(root: directory + "/missing", output: out)
        }
    }

    // MARK: CSV and report corpora

    func table(_ text: String, path: String = "reports.csv") throws -> CSVTable {
        try Array(text.utf8).withUnsafeBytes { try CSVTable(bytes: $0, path: path) }
    }

    func testCSVParsing() throws {
        let text = "\u{FEFF}id,text,label\r\n"
            + "r1,\"Invasive carcinoma, grade 2.\",tumour\r\n"
            + "r2,\"He said \"\"benign\"\"\nsecond line\",normal\r\n"
            + "\r\n"
            + "r3,plain text with a \" quote inside,\r\n"
            + "r4,\"\",\"\"\n"
            + "r5,last,x"
        let t = try table(text)
        XCTAssertEqual(t.header, ["id", "text", "label"])
        XCTAssertEqual(t.records.map(\.line), [2, 3, 6, 7, 8])
        XCTAssertEqual(t.records.map(\.fields), [
            ["r1", "Invasive carcinoma, grade 2.", "tumour"],
            ["r2", "He said \"benign\"\nsecond line", "normal"],
            ["r3", "plain text with a \" quote inside", ""],
            ["r4", "", ""],
            ["r5", "last", "x"]])
        // A lone CR ends a record too; a trailing delimiter makes an empty last field.
        XCTAssertEqual(try table("a,b\r1,\r").records.map(\.fields), [["1", ""]])
    }

    func testCSVErrorsNameFileAndLine() throws {
        assertImportError(.invalidInput, ["reports.csv:3", "never closed"]) {
            _ = try table("id,text\nr1,ok\nr2,\"open quote\nmore\n")
        }
        assertImportError(.invalidInput, ["reports.csv:2", "after a closing quote"]) {
            _ = try table("id,text\nr1,\"quoted\"tail\n")
        }
        assertImportError(.invalidInput, ["reports.csv:3", "3 fields", "header has 2"]) {
            _ = try table("id,text\nr1,ok\nr2,a,b\n")
        }
        assertImportError(.invalidInput, ["reports.csv:1", "empty"]) { _ = try table("") }
        assertImportError(.invalidInput, ["reports.csv:1", "'id' appears twice"]) { _ = try table("id,id\n1,2\n") }
        let invalidUTF8 = [UInt8]("id,text\nr1,".utf8) + [0xC3, 0x28]
        assertImportError(.invalidInput, ["reports.csv:2", "UTF-8"]) {
            _ = try invalidUTF8.withUnsafeBytes { try CSVTable(bytes: $0, path: "reports.csv") }
        }
    }

    /// An input without a single report is refused instead of writing an empty corpus.
    func testAnEmptyCorpusIsRefused() throws {
        for (name, text) in [("none.txt", "\n\n"), ("none.jsonl", ""), ("none.csv", "id,text\n")] {
            let path = directory + "/" + name
            writeBytes(path, Array(text.utf8))
            XCTAssertThrowsError(try ReportImporter.convert(input: path, output: directory + "/out.jsonl")) {
                XCTAssertTrue("\($0)".contains(path), "\($0)")
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/out.jsonl"), "\(name): nothing written")
        }
    }

    func testReportImportFromCSVTextAndJSONL() throws {
        let csv = directory + "/reports.csv"
        writeBytes(csv, Array(("\u{FEFF}case,report,diagnosis,site\n"
            + "c1,\"Adenocarcinoma, moderately differentiated.\",tumour,colon\n"
            + "c2,\"Benign \"\"reactive\"\" mucosa.\nNo dysplasia.\",normal,\n"
            + "c3,Unlabelled report.,,stomach\n"
            + "c4,Numbered label.,1,\n").utf8))
        let out = directory + "/reports.jsonl"
        let columns = ReportImporter.CSVColumns(text: "report", id: "case", label: "diagnosis", tissue: "site")
        let corpus = try ReportImporter.convert(input: csv, output: out, columns: columns)
        XCTAssertEqual(corpus.ids, ["c1", "c2", "c3", "c4"])
        XCTAssertEqual(corpus.texts[1], "Benign \"reactive\" mucosa.\nNo dysplasia.")
        XCTAssertEqual(corpus.labelNames, ["tumour", "normal", nil, "1"])
        XCTAssertEqual(corpus.tissues, ["colon", nil, "stomach", nil])
        let back = try ReportCorpus(path: out)
        XCTAssertEqual(back.texts, corpus.texts)
        XCTAssertEqual(back.ids, corpus.ids)
        XCTAssertEqual(back.labelNames, corpus.labelNames)

        // Defaults: "text" column, ids "row-<line>".
        let simple = directory + "/simple.csv"
        writeBytes(simple, Array("text\nfirst\n\"second, with comma\"\n".utf8))
        XCTAssertEqual(try ReportImporter.read(input: simple).ids, ["row-2", "row-3"])
        // Errors with file:line.
        assertImportError(.invalidInput, [csv + ":1", "no column 'body'", "'report'"]) {
            _ = try ReportImporter.read(input: csv, columns: .init(text: "body"))
        }
        assertImportError(.invalidInput, [csv + ":1", "no 'text' column", "--text-column"]) { _ = try ReportImporter.read(input: csv) }
        let duplicate = directory + "/dup.csv"
        writeBytes(duplicate, Array("id,text\na,x\nb,y\na,z\n".utf8))
        assertImportError(.invalidInput, [duplicate + ":4", "duplicate id \"a\"", "line 2"]) { _ = try ReportImporter.read(input: duplicate) }
        let empty = directory + "/empty.csv"
        writeBytes(empty, Array("id,text\na,x\nb,\"  \"\n".utf8))
        assertImportError(.invalidInput, [empty + ":3", "empty"]) { _ = try ReportImporter.read(input: empty) }

        // Text and JSONL go through the corpus reader (its errors carry file:line too).
        let txt = directory + "/reports.txt"
        writeBytes(txt, Array("one report\n\nanother report\n".utf8))
        XCTAssertEqual(try ReportImporter.convert(input: txt, output: out).ids, ["line-1", "line-3"])
        let jsonl = directory + "/bad.jsonl"
        writeBytes(jsonl, Array("{\"id\":\"a\",\"text\":\"x\"}\n{oops\n".utf8))
        XCTAssertThrowsError(try ReportImporter.read(input: jsonl)) { error in
            XCTAssertTrue("\(error)".hasPrefix(jsonl + ":2:"), "\(error)")
        }
        assertImportError(.invalidInput, ["reports.pdf", "unknown report file type"]) { _ = try ReportImporter.read(input: directory + "/reports.pdf") }
    }
}
