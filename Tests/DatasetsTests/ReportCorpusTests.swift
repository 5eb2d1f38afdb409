@testable import Datasets
@testable import Formats
import Foundation
import TestSupport
import XCTest

final class ReportCorpusTests: XCTestCase {
    func testPlainTextSkipsBlankLines() throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/reports.txt"
        writeBytes(path, Array("first report\n\n   \nsecond report\r\nthird, no newline".utf8))
        let corpus = try ReportCorpus(path: path)
        XCTAssertEqual(corpus.texts, ["first report", "second report", "third, no newline"])
        XCTAssertEqual(corpus.ids, ["line-1", "line-4", "line-5"])
        XCTAssertEqual(corpus.labels, [nil, nil, nil])
    }

    func testJSONLWithLabelsAndRoundTrip() throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/reports.jsonl"
        let text = """
        {"id": "r1", "text": "Adenocarcinoma, moderately differentiated.", "tissue": "colon", "label": "tumour"}

        {"id": "r2", "text": "Benign \\"mucosa\\"\\tok", "label": 0}
        {"id": "r3", "text": "No label here"}
        """
        writeBytes(path, Array(text.utf8))
        let corpus = try ReportCorpus(path: path, classNames: ["normal", "tumour"])
        XCTAssertEqual(corpus.ids, ["r1", "r2", "r3"])
        XCTAssertEqual(corpus.texts[1], "Benign \"mucosa\"\tok")
        XCTAssertEqual(corpus.tissues, ["colon", nil, nil])
        XCTAssertEqual(corpus.labels, [1, 0, nil])
        // Without class names, string labels stay names only.
        let unresolved = try ReportCorpus(path: path)
        XCTAssertEqual(unresolved.labels, [nil, 0, nil])
        XCTAssertEqual(unresolved.labelNames, ["tumour", "0", nil])
        // Round trip through the writer, and sniffing without an extension.
        let out = dir + "/copy"
        try corpus.writeJSONL(to: out, classNames: ["normal", "tumour"])
        let again = try ReportCorpus(path: out, classNames: ["normal", "tumour"])
        XCTAssertEqual(again.ids, corpus.ids)
        XCTAssertEqual(again.texts, corpus.texts)
        XCTAssertEqual(again.tissues, corpus.tissues)
        XCTAssertEqual(again.labels, corpus.labels)
        XCTAssertTrue(String(decoding: readBytes(out), as: UTF8.self).contains("\"label\":\"tumour\""))
    }

    func testMalformedLinesNameFileAndLine() throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/bad.jsonl"
        let good = "{\"id\": \"a\", \"text\": \"fine\"}\n"
        let cases: [(String, String)] = [
            ("{\"id\": \"b\", \"text\": \"x\"", "not valid JSON"),
            ("[1, 2]", "expected a JSON object"),
            ("{\"text\": \"x\"}", "\"id\""),
            ("{\"id\": 5, \"text\": \"x\"}", "\"id\""),
            ("{\"id\": \"b\"}", "\"text\""),
            ("{\"id\": \"b\", \"text\": \"   \"}", "empty"),
            ("{\"id\": \"a\", \"text\": \"again\"}", "duplicate id \"a\" (first on line 1)"),
            ("{\"id\": \"b\", \"text\": \"x\", \"label\": \"carcinoma\"}", "not one of the classes"),
            ("{\"id\": \"b\", \"text\": \"x\", \"label\": 7}", "out of range"),
            ("{\"id\": \"b\", \"text\": \"x\", \"label\": 1.5}", "\"label\""),
            ("{\"id\": \"b\", \"text\": \"x\", \"label\": true}", "\"label\""),
            ("{\"id\": \"b\", \"text\": \"x\", \"tissue\": 3}", "\"tissue\""),
        ]
        for (line, fragment) in cases {
            writeBytes(path, Array((good + "\n" + line + "\n").utf8))
            assertDatasetError(.badLine, ["\(path):3:", fragment]) {
                _ = try ReportCorpus(path: path, classNames: ["normal", "tumour"])
            }
        }
        // Invalid UTF-8 in a text corpus.
        let textPath = dir + "/bad.txt"
        writeBytes(textPath, Array("ok\n".utf8) + [0x61, 0xC3, 0x28, 0x0A])
        assertDatasetError(.badLine, ["\(textPath):2:", "UTF-8"]) { _ = try ReportCorpus(path: textPath) }
        assertDatasetError(.io, ["missing.txt"]) { _ = try ReportCorpus(path: dir + "/missing.txt") }
    }

    func testSniffsPlainTextWithoutExtension() throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/reports"
        writeBytes(path, Array("{not json} but a report\n".utf8))
        XCTAssertThrowsError(try ReportCorpus(path: path))   // sniffed as JSONL: the brace decides
        XCTAssertEqual(try ReportCorpus(path: path, format: .text).texts, ["{not json} but a report"])
        writeBytes(path, Array("plain report\n".utf8))
        XCTAssertEqual(try ReportCorpus(path: path).texts, ["plain report"])
    }
}
