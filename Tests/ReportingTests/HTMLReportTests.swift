import Evaluation
import Foundation
import Reporting
import Retrieval
import TestSupport
import XCTest

final class HTMLReportTests: XCTestCase {
    /// Fails unless `html` can be shown from disk alone: no URL, no script, every `src`
    /// a `data:` URI.
    func assertSelfContained(_ html: String, file: StaticString = #filePath, line: UInt = #line) {
        for forbidden in ["http://", "https://", "src=\"//", "<script", "<link", "@import", "url("] {
            XCTAssertFalse(html.contains(forbidden), "the page holds \(forbidden)", file: file, line: line)
        }
        let sources = attributeValues(html, tag: "img", name: "src")
        XCTAssertTrue(sources.allSatisfy { $0.hasPrefix("data:image/png;base64,") }, file: file, line: line)
        XCTAssertTrue(html.hasPrefix("<!DOCTYPE html>") && html.hasSuffix("</html>\n"), file: file, line: line)
    }

    func makePage(galleries: [PairingGallery]) -> ResultsPage {
        let groups = [
            MethodGroup(name: "clipit", method: "clipit", runs: [
                runResult(group: "clipit", seed: 0, wrong: 1, omega: 0.125, log: trainingLog(steps: 30, distill: 0.9)),
                runResult(group: "clipit", seed: 1, wrong: 2, omega: 0.25, log: trainingLog(steps: 30, distill: 0.8)),
            ]),
            MethodGroup(name: "unimodal<lora>", method: "unimodal-lora", runs: [
                runResult(group: "unimodal<lora>", seed: 0, wrong: 3, omega: nil, log: trainingLog(steps: 30, distill: 0)),
            ]),
        ]
        let pairing = PairingResult(name: "top1", folder: "pairs/top1", strategy: "top1",
                                    summaries: [labelledPairs(split: "train").summary(), labelledPairs().summary()],
                                    computedFromPairsFiles: false)
        return ResultsPage(notes: ["settings & <notes>"], groups: groups, comparison: ["clipit − unimodal-lora: +1.00"],
                           pairings: [pairing], galleries: galleries, galleryNote: "pass --data")
    }

    func testResultsPageIsSelfContainedAndHoldsEverySection() throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let dataset = try writeDataset(dir + "/test.cds")
        let examples = try RetrievalGallery.examples(pairs: labelledPairs(), pairsPath: "test.pairs.jsonl", dataset: dataset,
                                                     corpus: galleryCorpus, corpusPath: "reports.jsonl", count: 4)
        let html = makePage(galleries: [PairingGallery(pairing: "top1", split: "test", imageCount: 6, examples: examples)]).html()
        assertSelfContained(html)
        for id in ["summary", "accuracy", "curves", "confusion", "pairing", "retrieval"] {
            XCTAssertTrue(html.contains("<section id=\"\(id)\">"), "section \(id)")
        }
        // Curves: loss, ce and distill for clipit (3 + validation); unimodal<lora> logs
        // distill = 0 throughout, so it gets loss, ce and validation and a note.
        XCTAssertEqual(occurrences("class=\"chart line-chart\"", in: html), 4 + 3)
        XCTAssertTrue(html.contains("distill is 0 at every step"))
        // One polyline per seed in each clipit chart: 4 charts × 2 seeds, plus 3 × 1.
        XCTAssertEqual(occurrences("<polyline", in: html), 4 * 2 + 3)
        // Confusion matrices: one 2×2 heat map per method.
        XCTAssertEqual(occurrences("class=\"chart heat-map\"", in: html), 2)
        XCTAssertEqual(occurrences("<rect class=\"cell\"", in: html), 2 * 4)
        // Seeds 0 and 1 of clipit, summed: 16 predictions.
        XCTAssertTrue(html.contains("clipit: 2 seeds, 16 predictions"))
        XCTAssertTrue(html.contains("Ω 18.75 ± 8.84 %"), "Ω mean ± std over the seeds")
        // Test balanced accuracy: one bar per method, one dot per run.
        XCTAssertEqual(occurrences("<rect class=\"bar\"", in: html), 2)
        XCTAssertEqual(occurrences("<circle class=\"point\"", in: html), 3)
        XCTAssertEqual(occurrences("class=\"chart histogram\"", in: html), 1)
        XCTAssertTrue(html.contains("66.67 % (4)"), "label match of the test pairs: 4 of 6")
        // The gallery: 4 images as inline PNGs; a quarter (1) from the pairs whose labels
        // differ (images 1 and 4), shown as such.
        XCTAssertEqual(occurrences("<img src=\"data:image/png;base64,", in: html), 4)
        XCTAssertEqual(occurrences("<figure class=\"example mismatch\">", in: html), 1)
        XCTAssertEqual(occurrences("<figure class=\"example match\">", in: html), 3)
        // Text from data is escaped everywhere.
        XCTAssertFalse(html.contains("<lora>") || html.contains("<notes>") || html.contains("<stroma>")
                           || html.contains("<b>bold</b>"))
        XCTAssertTrue(html.contains("unimodal&lt;lora&gt;"))
    }

    func testPageWithoutGalleryExplainsWhatItNeeds() {
        let html = makePage(galleries: []).html()
        assertSelfContained(html)
        XCTAssertTrue(html.contains("<section id=\"retrieval\">"))
        XCTAssertTrue(html.contains("pass --data"))
        XCTAssertEqual(occurrences("<img", in: html), 0)
    }

    func testEvaluationPageShowsOneRunAndItsCurvesWhenLogged() {
        let run = runResult(group: "clipit", seed: 3, wrong: 2, omega: 0.25, log: nil)
        var evaluation = run.test
        evaluation.step = 30
        evaluation.textMetrics = metricsReport(labels: [0, 1], predictions: [0, 1], names: ["normal", "tumour & <stroma>"])
        let withLog = EvaluationPage(checkpoint: "runs/clipit-seed3/best.safetensors", data: "data/test.cds",
                                     evaluation: evaluation, log: trainingLog(steps: 20, distill: 0.5)).html()
        assertSelfContained(withLog)
        for id in ["metrics", "confusion", "curves"] { XCTAssertTrue(withLog.contains("<section id=\"\(id)\">")) }
        XCTAssertEqual(occurrences("<rect class=\"cell\"", in: withLog), 4)
        XCTAssertEqual(occurrences("class=\"chart line-chart\"", in: withLog), 4, "loss, ce, distill, validation")
        XCTAssertTrue(withLog.contains("text-only model"))
        XCTAssertTrue(withLog.contains("75.00"), "balanced accuracy: 6 of 8 right, classes balanced")
        let withoutLog = EvaluationPage(checkpoint: "best.safetensors", data: "test.cds", evaluation: evaluation,
                                        log: nil).html()
        assertSelfContained(withoutLog)
        XCTAssertEqual(occurrences("<polyline", in: withoutLog), 0)
        XCTAssertTrue(withoutLog.contains("holds no metrics.jsonl"))
    }
}
