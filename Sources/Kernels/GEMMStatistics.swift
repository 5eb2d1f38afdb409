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
/// The counters are plain process-wide variables, not synchronised: enable them only
/// while a single thread issues GEMMs (OpenBLAS's own worker threads do not count).
public enum GEMMStatistics {
    /// Whether `gemm` records its calls.
    public static var isEnabled = false
    /// Number of `gemm` calls recorded (calls with an empty result are not counted).
    public static var calls = 0
    /// Sum of 2·m·n·k over the recorded calls.
    public static var flops = 0.0
    /// Wall-clock seconds spent inside the recorded calls.
    public static var seconds = 0.0

    /// Sets the counters to zero (does not change `isEnabled`).
    public static func reset() {
        calls = 0
        flops = 0
        seconds = 0
    }

    /// Adds one call of `flops` operations that took `nanoseconds`.
    @inline(never)
    static func record(flops callFlops: Double, nanoseconds: UInt64) {
        calls += 1
        flops += callFlops
        seconds += Double(nanoseconds) * 1e-9
    }
}
