import ArgumentParser
import Distributed
import Foundation  // String(format:)
import Kernels     // Stopwatch

/// `clipit bench allreduce`: latency and bandwidth of an in-place Float32 sum
/// allreduce, per message size.
///
/// For each size: `--warmup` untimed calls, a barrier, then `n` timed calls; a rank's
/// time is the mean over its calls, and the reported time is the maximum of that mean
/// over ranks (the slowest rank sets the step time). With `t` seconds for `S` bytes on
/// `W` ranks:
///   algorithm bandwidth = S / t
///   bus bandwidth       = 2 (W-1)/W · S / t   (bytes a ring allreduce moves per rank,
///                                              comparable across rank counts)
struct BenchAllreduce: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "allreduce",
        abstract: "Allreduce latency (µs) and bandwidth (GB/s) per message size; run under mpirun.",
        discussion: """
            Example: launch/mpirun -np 2 -- clipit bench allreduce
            GB/s are 10^9 bytes per second. Each size runs --iterations times, fewer for \
            large messages so that one size moves at most --volume-mib MiB per rank.
            """)

    @OptionGroup var communicator: CommunicatorOptions

    @Option(help: "Smallest message in bytes (a multiple of 4).")
    var minBytes = 4

    @Option(help: "Largest message in bytes.")
    var maxBytes = 64 << 20

    @Option(help: "Ratio between consecutive message sizes.")
    var factor = 4

    @Option(help: "Untimed calls before timing each size.")
    var warmup = 5

    @Option(help: "Timed calls per size (at least 5 are always made).")
    var iterations = 100

    @Option(help: "Cap on the data each size moves per rank, in MiB, which bounds the calls for large sizes.")
    var volumeMib = 1024

    @Flag(help: "Print one JSON object per size instead of a table.")
    var json = false

    func validate() throws {
        guard minBytes >= 4, minBytes % 4 == 0 else {
            throw ValidationError("--min-bytes must be a positive multiple of 4 (one Float32), got \(minBytes)")
        }
        guard maxBytes >= minBytes else { throw ValidationError("--max-bytes (\(maxBytes)) is below --min-bytes") }
        guard factor >= 2 else { throw ValidationError("--factor must be at least 2, got \(factor)") }
        guard warmup >= 0, iterations >= 1, volumeMib >= 1 else {
            throw ValidationError("--warmup must be ≥ 0, --iterations and --volume-mib ≥ 1")
        }
    }

    /// One measured message size.
    struct Row {
        let bytes: Int
        let iterations: Int
        let seconds: Double  // max over ranks of the mean time per call
        let ranks: Int

        var algorithmBandwidth: Double { Double(bytes) / seconds / 1e9 }
        var busBandwidth: Double { algorithmBandwidth * 2 * Double(ranks - 1) / Double(ranks) }

        var json: String {
            func fixed(_ x: Double) -> String { String(format: "%.4f", x) }
            return "{\"benchmark\":\"allreduce\",\"op\":\"sum\",\"dtype\":\"float32\",\"ranks\":\(ranks),"
                + "\"bytes\":\(bytes),\"elements\":\(bytes / 4),\"iterations\":\(iterations),"
                + "\"time_us\":\(fixed(seconds * 1e6)),\"algbw_gbps\":\(fixed(algorithmBandwidth)),"
                + "\"busbw_gbps\":\(fixed(busBandwidth))}"
        }

        var tableLine: String {
            String(format: "%12d %10d %7d %12.2f %12.3f %12.3f",
                   bytes, bytes / 4, iterations, seconds * 1e6, algorithmBandwidth, busBandwidth)
        }
    }

    func run() throws {
        try communicator.run { comm in try measure(comm) }
    }

    private func measure(_ comm: any Communicator) throws {
        let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: maxBytes / 4)
        defer { buffer.deallocate() }
        buffer.initialize(repeating: 0)  // zeros stay zeros: no overflow or denormals

        if comm.rank == 0 && !json {
            print("allreduce sum Float32 in place, \(comm.size) ranks, backend \(comm.backendName); "
                  + "time = max over ranks of the mean per call")
            let header = [("bytes", 12), ("elements", 10), ("iters", 7), ("time(us)", 12),
                          ("algbw(GB/s)", 12), ("busbw(GB/s)", 12)]
            print(header.map { String(repeating: " ", count: max(0, $1 - $0.count)) + $0 }.joined(separator: " "))
        }
        var bytes = minBytes
        while bytes <= maxBytes {
            let message = UnsafeMutableBufferPointer(rebasing: buffer[0 ..< bytes / 4])
            let calls = max(5, min(iterations, (volumeMib << 20) / bytes))
            for _ in 0 ..< warmup { try comm.allreduce(message, .sum) }
            try comm.barrier()
            let watch = Stopwatch()
            for _ in 0 ..< calls { try comm.allreduce(message, .sum) }
            let mean = watch.elapsedSeconds / Double(calls)
            let row = Row(bytes: bytes, iterations: calls, seconds: try comm.allreduce(mean, .max), ranks: comm.size)
            if comm.rank == 0 { print(json ? row.json : row.tableLine) }
            if bytes > maxBytes / factor { break }
            bytes *= factor
        }
    }
}
