import ArgumentParser
import Distributed
import Formats
import Foundation  // String(format:)
import Kernels
import Retrieval

/// `clipit bench retrieval`: exact top-k search of N query rows (images) among M key rows
/// (reports) of dimension D, as `clipit pair` runs it across ranks: each rank holds N/W
/// queries and M/W keys; the keys are all-gathered and normalised (`SharedKeys`), each
/// rank searches its queries with the blocked GEMM + per-row selection (`blockedTopK`),
/// and the results are all-gathered.
///
/// Vectors are random (uniform in [−1, 1), generated per global row, so the data do not
/// depend on the rank count). Each phase's time is the maximum over ranks, fastest of
/// `--repeats`. The search's rate is 2·N·M·D FLOPs over its time, compared with W × the
/// sgemm peak each rank measures (n = `--peak-size`) before the search; that ratio's
/// inverse gives the GEMM-bound time, 2·N·M·D / (W × peak), the search's lower bound.
///
/// `--write-vectors DIR` writes what the search saw and found, for other libraries to
/// search the same vectors (`reference/bench_faiss_retrieval.py`, `launch/bench-retrieval-vs-faiss`):
/// `queries.npy` (N, D) and `keys.npy` (M, D), both L2-normalised float32, and the last
/// repetition's `topk_indices.npy` (N, k) int64 and `topk_scores.npy` (N, k) float32.
struct BenchRetrieval: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retrieval",
        abstract: "Exact top-k retrieval (N × M × D) as clipit pair runs it: gather, GEMM + selection; run under mpirun.",
        discussion: """
            Example: launch/mpirun -np 2 -- clipit bench retrieval --queries 20000 --keys 20000 --dimension 512
            """)

    @OptionGroup var communicator: CommunicatorOptions

    @Option(help: "Query rows N (images).")
    var queries = 20_000

    @Option(help: "Key rows M (reports).")
    var keys = 20_000

    @Option(help: "Dimension D of the embeddings.")
    var dimension = 512

    @Option(help: "Neighbours kept per query.")
    var k = 5

    @Option(help: "BLAS threads per rank (default: the library's thread variable, e.g. OPENBLAS_NUM_THREADS, else its own default).")
    var threads: Int?

    @Option(help: "Query rows per scores block (RetrievalBlocks.queryRows).")
    var queryBlock = RetrievalBlocks().queryRows

    @Option(help: "Key rows per scores block (RetrievalBlocks.keyRows).")
    var keyBlock = RetrievalBlocks().keyRows

    @Option(help: "Timed repetitions; the fastest counts.")
    var repeats = 3

    @Option(help: "Side of the square sgemm that measures the peak.")
    var peakSize = 1024

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    @Option(help: ArgumentHelp("Write the normalised vectors and the top-k result as .npy files into this folder.",
                               valueName: "dir"))
    var writeVectors: String?

    func validate() throws {
        guard queries >= 1, keys >= 1, dimension >= 1 else {
            throw ValidationError("--queries, --keys and --dimension must be at least 1")
        }
        guard (1...keys).contains(k) else { throw ValidationError("--k must be in 1...\(keys), got \(k)") }
        guard repeats >= 1, peakSize >= 64 else { throw ValidationError("--repeats ≥ 1 and --peak-size ≥ 64") }
    }

    func run() throws {
        if let threads { BLASRuntime.setThreads(threads) }
        try communicator.run { comm in try measure(comm) }
    }

    /// Rows `range` of a random (rows, D) matrix; row i drawn from a generator seeded by i.
    private func rows(_ range: Range<Int>, seed: UInt64) -> [Float] {
        var values = [Float](repeating: 0, count: range.count * dimension)
        values.withUnsafeMutableBufferPointer { v in
            for (r, i) in range.enumerated() {
                var rng = RandomGenerator(seed: seed &+ UInt64(i) &* 0x9E37_79B9_7F4A_7C15)
                rng.fillUniform(v.baseAddress! + r * dimension, count: dimension, low: -1, high: 1)
            }
        }
        return values
    }

    private func measure(_ comm: any Communicator) throws {
        let localQueries = l2NormalizedRows(rows(evenSlice(count: queries, rank: comm.rank, size: comm.size), seed: 1),
                                            dimension: dimension)
        let localKeys = rows(evenSlice(count: keys, rank: comm.rank, size: comm.size), seed: 2)
        let peak = try comm.allreduce(measuredSgemmPeak(size: peakSize), .min)   // the slowest rank's

        var gather = Double.infinity, search = Double.infinity, collect = Double.infinity
        var checksum = 0
        var last: (keys: SharedKeys, result: TopKResult)?
        for _ in 0..<repeats {
            try comm.barrier()
            var watch = Stopwatch()
            let shared = try SharedKeys(gathering: localKeys, dimension: dimension, comm: comm)
            let t1 = watch.lap()
            let local = shared.topK(normalizedQueries: localQueries, k: k,
                                    blocks: RetrievalBlocks(queryRows: queryBlock, keyRows: keyBlock))
            let t2 = watch.lap()
            let all = try local.allgathered(over: comm)
            let t3 = watch.lap()
            gather = min(gather, try comm.allreduce(t1, .max))
            search = min(search, try comm.allreduce(t2, .max))
            collect = min(collect, try comm.allreduce(t3, .max))
            checksum = all.indices.reduce(0) { ($0 &* 31) &+ $1 }
            last = (shared, all)
        }
        if let writeVectors, let last {
            let allQueries = try comm.allgatherv(localQueries).values
            if comm.rank == 0 {
                try writeNPYFiles(to: writeVectors, queries: allQueries, keys: last.keys.rows, result: last.result)
            }
        }
        guard comm.rank == 0 else { return }
        let flops = 2 * Double(queries) * Double(keys) * Double(dimension)
        let rate = flops / search
        let total = gather + search + collect
        let gemmBound = flops / (peak * Double(comm.size))
        if json {
            print("{\"ranks\":\(comm.size),\"threads\":\(BLASRuntime.threads),\"blas\":\"\(BLASRuntime.library) \(BLASRuntime.version)\",\"core\":\"\(BLASRuntime.kernel)\","
                  + "\"queries\":\(queries),\"keys\":\(keys),\"dimension\":\(dimension),\"k\":\(k),"
                  + "\"gather_s\":\(gather),\"search_s\":\(search),\"collect_s\":\(collect),"
                  + "\"search_gflops\":\(rate / 1e9),\"gemm_bound_s\":\(gemmBound),\"peak_gflops_per_rank\":\(peak / 1e9),"
                  + "\"fraction_of_peak\":\(rate / (peak * Double(comm.size))),"
                  + "\"queries_per_s\":\(Double(queries) / total),\"checksum\":\(checksum)}")
        } else {
            print("clipit bench retrieval: \(comm.size) rank(s) × \(BLASRuntime.threads) BLAS thread(s), \(BLASRuntime.summary); "
                  + "N \(queries) × M \(keys) × D \(dimension), top-\(k); fastest of \(repeats)")
            print(String(format: "  gather keys %.3f s · search %.3f s (%.1f GFLOP/s, %.0f%% of %d × %.1f GFLOP/s peak) · "
                         + "gather results %.3f s", gather, search, rate / 1e9, 100 * rate / (peak * Double(comm.size)),
                         comm.size, peak / 1e9, collect))
            print(String(format: "  GEMM-bound search time (2·N·M·D at the peak) %.3f s: search / bound = %.3f",
                         gemmBound, search / gemmBound))
            print(String(format: "  %.0f queries/s in all; result checksum %d (the same on any rank count)",
                         Double(queries) / total, checksum))
        }
    }

    /// Writes the search's inputs and result as .npy files into `folder` (created if missing).
    private func writeNPYFiles(to folder: String, queries: [Float], keys: [Float], result: TopKResult) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let path = { (name: String) in (folder as NSString).appendingPathComponent(name) }
        try NPYWriter.write(queries, shape: [self.queries, dimension], to: path("queries.npy"))
        try NPYWriter.write(keys, shape: [self.keys, dimension], to: path("keys.npy"))
        try NPYWriter.write(integers: result.indices.map(Int64.init), shape: [self.queries, k], to: path("topk_indices.npy"))
        try NPYWriter.write(result.scores, shape: [self.queries, k], to: path("topk_scores.npy"))
    }
}
