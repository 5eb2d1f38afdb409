#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// The progress display of rank 0 on standard error.
///
/// On a terminal: one line rewritten in place with `\r` (epoch, step, images/s, loss,
/// ETA). Otherwise (a log file, a batch system): a plain line every `every` steps and at
/// the last step, so logs stay readable. Other ranks get a disabled display.
public final class ProgressDisplay {
    public let enabled: Bool
    public let isTerminal: Bool
    public let every: Int
    private var lastLength = 0
    private var lineOpen = false

    public init(enabled: Bool, every: Int, forceTerminal: Bool? = nil) {
        self.enabled = enabled
        self.every = max(every, 1)
        isTerminal = forceTerminal ?? (isatty(STDERR_FILENO) != 0)
    }

    /// Formats seconds as `1h02m`, `3m05s` or `42s`.
    public static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        let s = Int(seconds.rounded())
        if s >= 3600 { return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60) }
        if s >= 60 { return String(format: "%dm%02ds", s / 60, s % 60) }
        return "\(s)s"
    }

    /// The status line of a step.
    public static func line(epoch: Int, epochs: Int, step: Int, steps: Int, imagesPerSecond: Double,
                            loss: Float, eta: Double) -> String {
        let width = String(steps).count
        let stepText = String(repeating: " ", count: max(0, width - String(step).count)) + String(step)
        return String(format: "epoch %d/%d  step %@/%d  %.1f img/s  loss %.4f  ETA %@",
                      epoch + 1, epochs, stepText, steps, imagesPerSecond, loss, duration(eta))
    }

    /// Shows a step's status.
    public func step(epoch: Int, epochs: Int, step: Int, steps: Int, imagesPerSecond: Double, loss: Float, eta: Double) {
        guard enabled else { return }
        let text = Self.line(epoch: epoch, epochs: epochs, step: step, steps: steps,
                             imagesPerSecond: imagesPerSecond, loss: loss, eta: eta)
        if isTerminal {
            let padding = String(repeating: " ", count: max(0, lastLength - text.count))
            emit("\r" + text + padding)
            lastLength = text.count
            lineOpen = true
        } else if step % every == 0 || step == steps || step == 1 {
            emit(text + "\n")
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

    private func emit(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }
}
