@testable import DataParallel
import Model
import XCTest

/// The progress display: the bar and line text, when plain lines are written, and the
/// text-collapse warning.
final class ProgressTests: XCTestCase {
    func testTheLineShowsTheBarPercentCountTimesRateAndValues() {
        let status = ProgressStatus(label: "epoch 2/3", done: 30, total: 120, elapsed: 65, rate: 442.25, rateUnit: "img/s",
                                    values: [("loss", 1.23456), ("ce", 0.5)])
        XCTAssertEqual(ProgressDisplay.line(status, bar: true),
                       "epoch 2/3  [######------------------]   25%   30/120  1m05s elapsed  ETA 3m15s  442.2 img/s  "
                       + "loss 1.2346  ce 0.5000")
        XCTAssertEqual(ProgressDisplay.line(status, bar: false),
                       "epoch 2/3   25%   30/120  1m05s elapsed  ETA 3m15s  442.2 img/s  loss 1.2346  ce 0.5000")
        XCTAssertEqual(ProgressDisplay.bar(fraction: 1, width: 4), "[####]")
        XCTAssertEqual(ProgressDisplay.bar(fraction: 0.99, width: 4), "[###-]")
        XCTAssertNil(ProgressStatus(label: "", done: 0, total: 5, elapsed: 1).eta, "no estimate before the first item")
        XCTAssertEqual(ProgressStatus(label: "", done: 1, total: 5, elapsed: 2, remaining: 7).eta, 7)
    }

    func testPlainOutputWritesTheFirstEveryNthAndLastUpdateATerminalRewritesOneLine() {
        var plain: [String] = []
        let log = ProgressDisplay(enabled: true, every: 4, forceTerminal: false) { plain.append($0) }
        for done in 1...10 { log.update(ProgressStatus(label: "x", done: done, total: 10, elapsed: Double(done))) }
        XCTAssertEqual(plain.map { $0.split(separator: " ", omittingEmptySubsequences: true)[2] }, ["1/10", "4/10", "8/10", "10/10"])
        XCTAssertTrue(plain.allSatisfy { $0.hasSuffix("\n") && !$0.contains("[") })

        var terminal = ""
        let tty = ProgressDisplay(enabled: true, every: 4, forceTerminal: true) { terminal += $0 }
        for done in 1...3 { tty.update(ProgressStatus(label: "x", done: done, total: 3, elapsed: 1)) }
        tty.message("done")
        XCTAssertEqual(terminal.filter { $0 == "\r" }.count, 3)
        XCTAssertEqual(terminal.filter { $0 == "\n" }.count, 2, "the open line is ended before the message")
        XCTAssertTrue(terminal.hasSuffix("\ndone\n"))

        var nothing = ""
        ProgressDisplay(enabled: false, every: 1, forceTerminal: true) { nothing += $0 }
            .update(ProgressStatus(label: "x", done: 1, total: 1, elapsed: 1))
        XCTAssertEqual(nothing, "")
    }

    func testTextCollapseIsWarnedOnceWhenTextCosPassesTheThreshold() throws {
        var text = ""
        let display = ProgressDisplay(enabled: true, every: 1, forceTerminal: false) { text += $0 }
        let throughput = ThroughputMeter(), reporter = ProgressReporter(display: display, throughput: throughput)
        for (step, cos) in [0.5, 0.94, 0.96, 0.99].enumerated() {
            let outcome = DataParallelStep.Outcome(losses: LossBreakdown(total: 1, ce: 0.7, distill: 0.3), gradientNorm: 1,
                                                   learningRate: 1e-3, stopRequested: false,
                                                   diagnostics: UnsafeBufferPointer(start: nil, count: 0))
            let report = StepReport(step: step + 1, totalSteps: 4, epoch: 0, epochs: 1, batchInEpoch: step, samples: 8,
                                    outcome: outcome, seconds: 0.1, scalars: ["text_cos": cos])
            throughput.stepEnded(report)
            reporter.stepEnded(report)
        }
        let warnings = text.components(separatedBy: "\n").filter { $0.hasPrefix("warning: text_cos") }
        XCTAssertEqual(warnings, ["warning: text_cos 0.960 at step 3: the paired reports' text embeddings are nearly "
                                  + "one vector (the text tower is collapsing; docs/training.md, \"Text-collapse diagnostic\")"])
        XCTAssertTrue(text.contains("text_cos 0.9900"), "every step shows text_cos")
    }
}
