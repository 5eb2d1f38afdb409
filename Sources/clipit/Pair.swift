import ArgumentParser
import DataParallel
import Datasets
import Formats
import Foundation
import Kernels
import Model
import Retrieval

/// `clipit pair`: Stage 1, distributed retrieval of a report for every image.
struct Pair: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pair",
        abstract: "Stage 1: pair every image of every split with a report using a pretrained retriever.",
        discussion: """
            Ranks embed disjoint slices of the reports and of each split's images, share the \
            report embeddings and search exactly (blocked top-k of cosine similarities). Rank 0 \
            writes OUT/<split>.pairs.jsonl for each split found in DIR (train, val, test, and \
            unlabeled: the unlabelled images of `clipit synth --unlabeled`, for data.unlabeled) \
            and OUT/pairing-summary.json (score histogram, distinct reports, label-match rate \
            where the images and reports carry labels; unlabelled images have none). The \
            oracle strategy skips unlabelled splits. Test pairs are for analysis only. Runs \
            unchanged on one rank or under mpirun/srun. A model folder is used as `clipit embed` uses it: its \
            own image preprocessing and CLIP BPE tokenizer (reports cleaned first). See \
            docs/retriever.md and docs/running-the-paper-setup.md.
            """)

    @OptionGroup var communicator: CommunicatorOptions

    @Option(help: "Retriever: an export of `clipit pretrain` (retriever.safetensors) or a pretrained CLIP / open_clip model folder (PLIP, QuiltNet; as `clipit embed --model`).")
    var retriever: String

    @Option(help: "Directory holding the splits (<split>.cds).")
    var data: String

    @Option(help: "Report corpus (.jsonl or .txt).")
    var reports: String

    @Option(help: "Output folder (created if missing).")
    var out: String

    @Option(help: "top1, sample-top-k:K, random, least-similar or oracle.")
    var strategy: String = "top1"

    @Option(help: "Most similar reports recorded per image (indices and scores, for analysis).")
    var k: Int = 5

    @Option(help: "Seed of the random strategies.")
    var seed: UInt64 = 0

    @Option(parsing: .upToNextOption, help: "Splits to pair (those missing from DIR are skipped).")
    var splits: [String] = ["train", "val", "test", "unlabeled"]

    @Option(help: "Images or reports embedded per forward pass.")
    var batch: Int?

    @Option(name: .customLong("batch-size"), help: aliasHelp(of: "batch"))
    var batchSizeAlias: Int?

    /// `--batch` (or its old name), default 128.
    var batchSize: Int { get throws { try renamedOption(batch, batchSizeAlias, name: "batch", oldName: "batch-size") ?? 128 } }

    func validate() throws {
        let batchSize = try self.batchSize
        do { _ = try PairingStrategy(parsing: strategy) } catch { throw ValidationError(String(describing: error)) }
        guard k >= 1 else { throw ValidationError("--k must be at least 1, got \(k)") }
        guard batchSize >= 1 else { throw ValidationError("--batch must be at least 1, got \(batchSize)") }
    }

    func run() throws {
        try communicator.run { comm in
            let clock = Stopwatch()
            let pipeline = try PairingPipeline(retrieverPath: retriever, comm: comm, batchSize: try batchSize)
            pipeline.progress = ItemProgress.phases("pair: embedding rank 0's", unit: "items/s", enabled: comm.rank == 0)
            let options = PairingOptions(strategy: try PairingStrategy(parsing: strategy), seed: seed, recordedK: k)
            let folder = try DataFolder(data)
            let present = splits.filter { folder.split($0) != nil }
            guard !present.isEmpty else {
                throw RetrieverError("no split of \(splits) found in \(data) (expected <split>.cds files)")
            }
            // Report labels given as class names map to the datasets' class indices; labels
            // that are not classes are left out of the label statistics, and said so.
            let classNames = try DatasetFile(path: try folder.requiredSplit(present[0])).classNames
            let (corpus, unmatched) = try ReportCorpus(path: reports).resolvingLabels(classNames: classNames)
            if comm.rank == 0 && !unmatched.isEmpty {
                let shown = unmatched.sorted().prefix(5).map { "\"\($0)\"" }.joined(separator: ", ")
                print("pair: warning: \(reports): \(unmatched.count) report label\(unmatched.count == 1 ? " is" : "s are") not "
                           + "a class of \(data) (\(shown)\(unmatched.count > 5 ? ", …" : "")); those reports count as unlabelled")
            }
            if comm.rank == 0 { try OutputDirectory.create(out) }
            let localReports = pipeline.embedReports(corpus)
            let reportLabels = corpus.labels.contains { $0 != nil } ? corpus.labels : nil
            var summaries: [PairsSummary] = []
            for split in present {
                let dataset = try DatasetFile(path: try folder.requiredSplit(split))
                if options.strategy == .oracle && !dataset.isLabelled {
                    // Every rank skips it alike: the oracle needs each image's class.
                    if comm.rank == 0 {
                        print("pair: \(split): skipped, \(dataset.path) holds unlabelled images and the oracle strategy "
                              + "needs each image's class")
                    }
                    continue
                }
                let pairs = try pipeline.pair(dataset, split: split, localReports: localReports,
                                              reportLabels: reportLabels, options: options)
                let summary = pairs.summary()
                summaries.append(summary)
                if comm.rank == 0 {
                    try pairs.write(to: URL(fileURLWithPath: out + "/\(split).pairs.jsonl"))
                    let match = summary.labelMatchRate.map { String(format: ", label match %.1f%%", $0 * 100) } ?? ""
                    print(String(format: "pair: %@  %d images → %d distinct of %d reports, mean score %.3f%@",
                                 split, summary.imageCount, summary.distinctReports, summary.reportCount,
                                 summary.meanScore ?? 0, match))
                }
            }
            let seconds = clock.elapsedSeconds
            if comm.rank == 0 {
                let run = PairingRunSummary(retriever: retriever, reports: reports, ranks: comm.size, seconds: seconds,
                                            splits: summaries)
                try AtomicFileWriter.write(run.jsonData(), to: out + "/pairing-summary.json")
                print(String(format: "pair: strategy %@, %d rank%@, %.1f s; wrote %@/<split>.pairs.jsonl and pairing-summary.json",
                             options.strategy.description, comm.size, comm.size == 1 ? "" : "s", seconds, out))
            }
            try comm.barrier()
        }
    }
}
