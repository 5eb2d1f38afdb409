#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Kernels

/// Where a long loop stands: `done` of `total` units, with a rate and named values.
public struct ProgressStatus: Sendable {
    /// What is running, e.g. "epoch 2/3" or "pair: test images".
    public var label: String
    public var done: Int
    public var total: Int
    /// Seconds since the loop started.
    public var elapsed: Double
    /// Seconds left; nil estimates it from `elapsed` at the average rate so far.
    public var remaining: Double?
    /// Units per second and their name (e.g. 442.3 "img/s"); nil when not measured.
    public var rate: Double?
    public var rateUnit: String
    /// Named values shown after the rate, e.g. each loss term.
    public var values: [(name: String, value: Double)]

    public init(label: String, done: Int, total: Int, elapsed: Double, remaining: Double? = nil,
                rate: Double? = nil, rateUnit: String = "items/s", values: [(name: String, value: Double)] = []) {
        self.label = label
        self.done = done
        self.total = total
        self.elapsed = elapsed
        self.remaining = remaining
        self.rate = rate
        self.rateUnit = rateUnit
        self.values = values
    }

    /// `remaining`, or the average-rate estimate (nil before the first unit).
    public var eta: Double? {
        if let remaining { return remaining }
        guard done > 0 else { return nil }
        return elapsed / Double(done) * Double(max(total - done, 0))
    }
}

/// The progress display of rank 0 on standard error.
///
/// On a terminal: one line rewritten in place with `\r` — a bar, the percentage, done/total,
/// elapsed time, ETA, the rate and the named values (each loss term). Otherwise (a log
/// file, a batch system): the same text without the bar, as a plain line every `every`
/// updates, at the first and at the last, so logs stay readable. Other ranks get a
/// disabled display.
public final class ProgressDisplay {
    public let enabled: Bool
    public let isTerminal: Bool
    public let every: Int
    private var lastLength = 0
    private var lineOpen = false
    private let output: (String) -> Void

    /// `output` receives the text (default: standard error); `forceTerminal` overrides the
    /// terminal check.
    public init(enabled: Bool, every: Int, forceTerminal: Bool? = nil, output: ((String) -> Void)? = nil) {
        self.enabled = enabled
        self.every = max(every, 1)
        isTerminal = forceTerminal ?? (isatty(STDERR_FILENO) != 0)
        self.output = output ?? { FileHandle.standardError.write(Data($0.utf8)) }
    }

    /// Formats seconds as `1h02m`, `3m05s` or `42s`.
    public static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        let s = Int(seconds.rounded())
        if s >= 3600 { return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60) }
        if s >= 60 { return String(format: "%dm%02ds", s / 60, s % 60) }
        return "\(s)s"
    }

    /// `[#########---------------]`: `width` cells, the filled ones rounded down.
    public static func bar(fraction: Double, width: Int = 24) -> String {
        let filled = Int((max(0, min(1, fraction)) * Double(width)).rounded(.down))
        return "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "]"
    }

    /// The text of a status: "LABEL [bar]  42%  120/288  3m05s elapsed  ETA 4m10s  442.3 img/s  loss 1.2345 ...";
    /// `bar: false` leaves the bar out (plain log lines).
    public static func line(_ s: ProgressStatus, bar showBar: Bool) -> String {
        let fraction = s.total > 0 ? Double(s.done) / Double(s.total) : 0
        let width = String(s.total).count
        let done = String(repeating: " ", count: max(0, width - String(s.done).count)) + String(s.done)
        var parts = [s.label]
        if showBar { parts.append(bar(fraction: fraction)) }
        parts.append(String(format: "%3.0f%%", fraction * 100))
        parts.append("\(done)/\(s.total)")
        parts.append(duration(s.elapsed) + " elapsed")
        parts.append("ETA " + (s.eta.map(duration) ?? "?"))
        if let rate = s.rate { parts.append(String(format: "%.1f %@", rate, s.rateUnit)) }
        for (name, value) in s.values { parts.append(String(format: "%@ %.4f", name, value)) }
        return parts.joined(separator: "  ")
    }

    /// Shows a status: rewritten in place on a terminal; on other outputs a line at the
    /// first and last unit and every `every` units.
    public func update(_ status: ProgressStatus) {
        guard enabled else { return }
        if isTerminal {
            let text = Self.line(status, bar: true)
            let padding = String(repeating: " ", count: max(0, lastLength - text.count))
            emit("\r" + text + padding)
            lastLength = text.count
            lineOpen = true
        } else if status.done % every == 0 || status.done == status.total || status.done == 1 {
            emit(Self.line(status, bar: false) + "\n")
        }
    }

    /// Prints a message on its own line (ends an open progress line first).
    public func message(_ text: String) {
        guard enabled else { return }
        finishLine()
        emit(text + "\n")
    }

    /// Ends the in-place line (call before other output and at the end).
    public func finishLine() {
        guard enabled, lineOpen else { return }
        emit("\n")
        lineOpen = false
        lastLength = 0
    }

    private func emit(_ text: String) { output(text) }
}

/// Progress over a known number of items (images embedded, batches evaluated, files
/// imported) for the commands that are not training loops: call `advance(by:)` as items
/// finish and `finish()` at the end. Rate in `unit`s per second.
public final class ItemProgress {
    let display: ProgressDisplay
    let label: String
    let total: Int
    let unit: String
    private var done = 0
    private let clock = Stopwatch()

    /// `every`: plain-log lines every this many items (terminals update in place).
    public init(_ label: String, total: Int, unit: String = "items/s", enabled: Bool, every: Int? = nil) {
        self.label = label
        self.total = total
        self.unit = unit
        display = ProgressDisplay(enabled: enabled && total > 0, every: every ?? max(total / 10, 1))
    }

    public func advance(by count: Int = 1) { update(done: done + count) }

    /// Shows `done` of the total items finished.
    public func update(done: Int) {
        self.done = done
        let elapsed = clock.elapsedSeconds
        display.update(ProgressStatus(label: label, done: done, total: total, elapsed: elapsed,
                                      rate: elapsed > 0 ? Double(done) / elapsed : nil, rateUnit: unit))
    }

    public func finish() { display.finishLine() }

    /// A `(done, total)` callback showing one bar labelled `label`.
    public static func callback(_ label: String, unit: String, enabled: Bool) -> (Int, Int) -> Void {
        let phase = phases(label, unit: unit, enabled: enabled)
        return { phase("", $0, $1) }
    }

    /// A `(what, done, total)` callback showing one bar per phase ("PREFIX: what", or
    /// "PREFIX" for an empty `what`), a new bar each time `what` changes (e.g. "reports",
    /// then "test images").
    public static func phases(_ prefix: String, unit: String, enabled: Bool) -> (String, Int, Int) -> Void {
        var current: (what: String, bar: ItemProgress)?
        return { what, done, total in
            if current?.what != what {
                current?.bar.finish()
                current = (what, ItemProgress(what.isEmpty ? prefix : "\(prefix): \(what)", total: total, unit: unit,
                                              enabled: enabled))
            }
            current!.bar.update(done: done)
            if done == total { current!.bar.finish() }
        }
    }
}
