@testable import Datasets
@testable import Formats
import XCTest

final class ReportCleaningTests: XCTestCase {
    func check(_ input: String, _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(ReportCleaning.clean(input), expected, file: file, line: line)
    }

    func testKeepsTheCharactersTheReferenceDeletes() {
        check("Grade I|II tumour in 1 of 11 nodes, pT1 | margin clear; invasion is minimal",
              "Grade I | II tumour in 1 of 11 nodes, pT1 | margin clear; invasion is minimal")
        check("iii III 111 i I 1", "iii III 111 i I 1")
    }

    func testWhitespaceControlsAsterisksUnderscores() {
        check("  A\t\tB\u{0007}C\n\nD\r\n ", "A B C D")
        check("**FINAL DIAGNOSIS**: __adenocarcinoma__", "FINAL DIAGNOSIS: adenocarcinoma")
        check("zero\u{200B}width", "zero width")
        check("lymph_node ***** present", "lymph node present")
    }

    func testRedacted() {
        check("Patient: [Redacted] Age: [REDACTED] years", "Patient: Age: years")
        check("seen by Dr (redacted), Redacted clinic", "seen by Dr, clinic")
        check("Name:[Redacted]", "Name:")
        check("unredacted text is redactedly kept", "unredacted text is redactedly kept")
    }

    func testOCRGarbage() {
        check("Tumor size 3.5 cm #@! ~~~ margins c0l0n neg@tive, T3N1 pT2a HER2 Ki-67 2/12 nodes",
              "Tumor size 3.5 cm margins, T3N1 pT2a HER2 Ki-67 2/12 nodes")
        check("measures 10x20x5 mm (1,200 g) H&E stain, ER=positive, p16 (+) 10:30", 
              "measures 10x20x5 mm (1,200 g) H&E stain, ER=positive, p16 (+) 10:30")
        check("th#s w}rd ti1e --> gone. Next", "gone. Next")
        check("The c0l0n. Next", "The. Next")
        check("lymph node(s) at <0.1 cm, >5 cm, ~2 cm, #3", "lymph node(s) at <0.1 cm, >5 cm, ~2 cm, #3")
        check("café µm 37°C", "café µm 37°C")
    }

    func testPunctuationSpacing() {
        check("word ,word", "word, word")
        check("margin : clear ; nodes negative .", "margin: clear; nodes negative.")
        check("( 3 cm ) and [ x ]", "(3 cm) and [x]")
        check("size .5 cm, 1,200 and 3.5", "size .5 cm, 1,200 and 3.5")
        check("cm.Margin e.g. the U.S.A. case", "cm. Margin e.g. the U.S.A. case")
        check("12 % of cells", "12% of cells")
    }

    func testDropWordsIsDeterministic() {
        let text = "one two three four five six seven eight nine ten"
        XCTAssertEqual(ReportCleaning.dropWords(text, fraction: 0, seed: 1, reportIndex: 0), text)
        XCTAssertEqual(ReportCleaning.dropWords(text, fraction: 1, seed: 1, reportIndex: 0), "")
        let a = ReportCleaning.dropWords(text, fraction: 0.3, seed: 1, reportIndex: 5)
        XCTAssertEqual(a, ReportCleaning.dropWords(text, fraction: 0.3, seed: 1, reportIndex: 5))
        XCTAssertEqual(a.split(separator: " ").count, 7)
        // Kept words are in their original order.
        let words = text.split(separator: " ")
        let kept = a.split(separator: " ").map { words.firstIndex(of: $0)! }
        XCTAssertEqual(kept, kept.sorted())
        // Another index or seed picks other words (for this text, with overwhelming probability).
        let others = (0..<10).map { ReportCleaning.dropWords(text, fraction: 0.3, seed: 2, reportIndex: $0) }
        XCTAssertGreaterThan(Set(others).count, 5)
    }
}
