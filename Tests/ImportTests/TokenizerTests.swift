import Datasets
import Formats
import Import
import Kernels
import Model
import XCTest

final class TokenizerTests: XCTestCase {
    static var fullVocabulary: [TextNormalization: CLIPTokenizer] = [:]

    func tokenizer(_ normalization: TextNormalization) throws -> CLIPTokenizer {
        if let t = Self.fullVocabulary[normalization] { return t }
        let t = try CLIPTokenizer(bpeGzip: try ImportFixtures.path("tokenizer/bpe_simple_vocab_16e6.txt.gz"),
                                  normalization: normalization)
        Self.fullVocabulary[normalization] = t
        return t
    }

    /// Every corpus line, row by row, against the reference ids.
    func checkCorpus(_ normalization: TextNormalization, key: String, contextLength: Int,
                     file: StaticString = #filePath, line: UInt = #line) throws {
        let expected = try ImportFixtures.safetensors("tokenizer/expected_ids.safetensors")
        let ids = try expected.ints(key)
        let lines = try ImportFixtures.corpus()
        XCTAssertEqual(lines.count, 40, file: file, line: line)
        XCTAssertEqual(ids.count, lines.count * contextLength, file: file, line: line)
        let t = try tokenizer(normalization)
        var mismatches = 0
        for (row, text) in lines.enumerated() {
            let got = t.tokenize(text, contextLength: contextLength).map(Int.init)
            let want = Array(ids[(row * contextLength)..<((row + 1) * contextLength)])
            if got != want {
                mismatches += 1
                XCTFail("\(key) line \(row + 1) '\(text)':\n  got  \(got)\n  want \(want)", file: file, line: line)
            }
        }
        XCTAssertEqual(mismatches, 0, file: file, line: line)
    }

    func testOpenCLIPIdsMatchOnCorpus() throws {
        try checkCorpus(.openCLIP, key: "openclip.ids", contextLength: 77)
    }

    func testOpenCLIPTruncationKeepsEndToken() throws {
        try checkCorpus(.openCLIP, key: "openclip.ids_context16", contextLength: 16)
    }

    func testHuggingFaceIdsMatchOnCorpus() throws {
        try checkCorpus(.huggingFace, key: "hf.ids", contextLength: 77)
    }

    func testVocabularyLayout() throws {
        let t = try tokenizer(.openCLIP)
        XCTAssertEqual(t.vocabularySize, 49408)
        XCTAssertEqual(t.startOfTextId, 49406)
        XCTAssertEqual(t.endOfTextId, 49407)
        // "!" is the first vocabulary entry, "!</w>" the 257th.
        XCTAssertEqual(t.encode("!"), [256])
        XCTAssertEqual(t.tokenize("", contextLength: 4), [49406, 49407, 0, 0])
    }

    func testPreTokenizationPattern() throws {
        let t = try tokenizer(.openCLIP)
        XCTAssertEqual(t.preTokenize("it's 3.5cm, pt2n0!! they're"),
                       ["it", "'s", "3", ".", "5", "cm", ",", "pt", "2", "n", "0", "!!", "they", "'re"])
        XCTAssertEqual(t.preTokenize("a--'ll b'x"), ["a", "--'", "ll", "b", "'", "x"])
        XCTAssertEqual(t.preTokenize("x<end_of_text>y"), ["x", "<end_of_text>", "y"])
    }

    func testNormalizations() {
        XCTAssertEqual(TextNormalization.openCLIP.apply("  “ＣＤ３” &amp;amp; ﬁbrosis\t\nX  "),
                       "\"cd3\" & fibrosis x")
        XCTAssertEqual(TextNormalization.huggingFace.apply("  A&amp;B\t\nX "), " a&amp;b x ")
        XCTAssertEqual(TextNormalization.openCLIP.apply("ΟΔΟΣ ΣΑ"), "οδος σα")
        XCTAssertEqual(htmlUnescape("&lt;5 &#x3bc;m &#956; &ampx &unknown; &"), "<5 μm μ &x &unknown; &")
    }

    func testGzipRoundTripOfHuggingFaceFiles() throws {
        // The tiny HF and open_clip folders hold the same truncated merges in both formats.
        let hf = try CLIPTokenizer(vocabularyJSON: try ImportFixtures.path("hf_clip/vocab.json"),
                                   mergesFile: try ImportFixtures.path("hf_clip/merges.txt"),
                                   normalization: .openCLIP)
        let oc = try CLIPTokenizer(bpeGzip: try ImportFixtures.path("open_clip/bpe_simple_vocab.txt.gz"))
        XCTAssertEqual(hf.vocabularySize, oc.vocabularySize)
        XCTAssertEqual(hf.endOfTextId, oc.endOfTextId)
        for text in try ImportFixtures.corpus() { XCTAssertEqual(hf.tokenize(text), oc.tokenize(text), text) }
    }
}
