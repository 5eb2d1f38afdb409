#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Opt-in accounting of the matrix products that go through `gemm`: how many calls, how
/// many floating-point operations (2·m·n·k each) and how much wall-clock time they took.
///
/// Off by default, and then `gemm` pays one predictable branch per call. Profiling
/// drivers (`clipit bench step`) switch it on around a region of interest:
///
///     GEMMStatistics.reset()
///     GEMMStatistics.isEnabled = true
///     model.forwardBackward(…)
///     GEMMStatistics.isEnabled = false
///     let gemmSeconds = GEMMStatistics.seconds
///
/// Switch it on and off, and reset it, from one thread while no GEMM runs. Recording is
/// thread-safe: a parallel region that issues GEMMs from `concurrency` threads at once
/// (attention heads) sets that width, and each of its calls then counts 1/width of its
/// duration, so that `seconds` stays comparable with elapsed time.
public enum GEMMStatistics {
    /// Whether `gemm` records its calls.
    public static var isEnabled = false
    /// Number of `gemm` calls recorded (calls with an empty result are not counted).
    public static private(set) var calls = 0
    /// Sum of 2·m·n·k over the recorded calls.
    public static private(set) var flops = 0.0
    /// Wall-clock seconds spent inside the recorded calls (each divided by the
    /// `concurrency` in force when it ran).
    public static private(set) var seconds = 0.0
    /// How many threads are issuing GEMMs at the same time; 1 outside parallel regions.
    public static var concurrency = 1

    private static let lock: UnsafeMutablePointer<pthread_mutex_t> = {
        let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(m, nil)
        return m
    }()

    /// Sets the counters to zero (does not change `isEnabled`).
    public static func reset() {
        calls = 0
        flops = 0
        seconds = 0
    }

    /// Adds one call of `flops` operations that took `nanoseconds`.
    @inline(never)
    static func record(flops callFlops: Double, nanoseconds: UInt64) {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        calls += 1
        flops += callFlops
        seconds += Double(nanoseconds) * 1e-9 / Double(concurrency)
    }
}
