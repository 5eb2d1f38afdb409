#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Wall-clock timing on the monotonic clock (`clock_gettime(CLOCK_MONOTONIC)`), which
/// never jumps with NTP or manual clock changes. For benchmarks and step timing.
///
///     var watch = Stopwatch()
///     work()
///     let seconds = watch.elapsedSeconds
public struct Stopwatch: Sendable {
    private var start: UInt64

    /// A stopwatch started now.
    public init() { start = Stopwatch.nanoseconds() }

    /// Restarts the stopwatch from now.
    public mutating func reset() { start = Stopwatch.nanoseconds() }

    /// Seconds since creation or the last `reset`.
    public var elapsedSeconds: Double {
        Double(Stopwatch.nanoseconds() &- start) * 1e-9
    }

    /// Seconds since creation or the last `reset`, then restarts (for per-step laps).
    public mutating func lap() -> Double {
        let now = Stopwatch.nanoseconds()
        defer { start = now }
        return Double(now &- start) * 1e-9
    }

    /// The monotonic clock in nanoseconds from an arbitrary fixed origin.
    public static func nanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
