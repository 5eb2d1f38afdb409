import Datasets
import Distributed
import Formats
import Foundation
import Kernels

/// Stage 1 end to end (CLIP-IT.md): embed the report corpus and every split's images
/// with a pretrained retriever and pair each image with a report.
///
/// The retriever is any `PairingEncoder`: an export of `clipit pretrain` or a pretrained
/// CLIP / open_clip model folder (PLIP, QuiltNet). Work split: each rank embeds its even
/// slice of the reports and of each split's images (`evenSlice`, rank order = global
/// order), in batches of `batchSize`, and L2-normalises the rows; `pairImages` then
/// shares the report embeddings with one `allgatherv`, searches exactly (blocked top-k)
/// for the rank's own images and gathers the records, so every rank holds the same
/// `PairsFile`, identical to a single-rank run. Rank 0 writes the files.
public final class PairingPipeline {
    public let encoder: any PairingEncoder
    public let comm: any Communicator
    public let batchSize: Int

    public init(encoder: any PairingEncoder, comm: any Communicator, batchSize: Int = 128) {
        precondition(batchSize >= 1, "PairingPipeline: batchSize must be positive")
        self.encoder = encoder
        self.comm = comm
        self.batchSize = batchSize
    }

    /// Loads the retriever at `retrieverPath`: a retriever export file (`clipit pretrain`;
    /// model, word tokenizer and image normalisation from its metadata) or a pretrained
    /// model folder (its towers, CLIP BPE tokenizer and preprocessing).
    public convenience init(retrieverPath: String, comm: any Communicator, batchSize: Int = 128) throws {
        self.init(encoder: try makePairingEncoder(path: retrieverPath), comm: comm, batchSize: batchSize)
    }

    /// Told what is being embedded ("reports", "<split> images"), this rank's items done
    /// and its total, after each batch.
    public var progress: ((_ what: String, _ done: Int, _ total: Int) -> Void)?

    /// `count` items in batches of at most `batchSize`, L2-normalised rows `(count, D)`.
    private func embedInBatches(_ what: String, count: Int, _ embed: (Range<Int>) -> [Float]) -> [Float] {
        let d = encoder.embeddingDim
        var out: [Float] = []
        out.reserveCapacity(count * d)
        for start in stride(from: 0, to: count, by: batchSize) {
            let end = min(start + batchSize, count)
            out += l2NormalizedRows(embed(start ..< end), dimension: d)
            progress?(what, end, count)
        }
        return out
    }

    /// This rank's slice of the L2-normalised report embeddings `(slice, D)`, reports
    /// cleaned with `ReportCleaning.clean` and encoded with the retriever's tokenizer.
    public func embedReports(_ corpus: ReportCorpus) -> [Float] {
        let mine = evenSlice(count: corpus.count, rank: comm.rank, size: comm.size)
        let cleaned = mine.map { ReportCleaning.clean(corpus.texts[$0]) }
        return embedInBatches("reports", count: cleaned.count) { encoder.embedReports(cleaned, range: $0) }
    }

    /// This rank's slice of the L2-normalised image embeddings `(slice, D)` of `dataset`
    /// (the retriever's evaluation transform) and their labels (-1 in an unlabelled file).
    public func embedImages(_ dataset: DatasetFile) -> (embeddings: [Float], labels: [Int]) {
        let mine = evenSlice(count: dataset.count, rank: comm.rank, size: comm.size)
        let embeddings = embedInBatches("\(dataset.split) images", count: mine.count) { range in
            encoder.embedImages(dataset, range: (mine.lowerBound + range.lowerBound) ..< (mine.lowerBound + range.upperBound))
        }
        return (embeddings, mine.map { dataset.label(at: $0) })
    }

    /// Pairs every image of `dataset` with a report. `localReports` is this rank's slice
    /// from `embedReports`, `reportLabels` every report's label (nil: unknown) or nil.
    /// An unlabelled dataset's records carry no image label (so the label statistics skip
    /// them), and the oracle strategy, which needs each image's class, refuses it.
    /// Every rank must call it; all return the same pairs.
    public func pair(_ dataset: DatasetFile, split: String, localReports: [Float], reportLabels: [Int?]?,
                     options: PairingOptions) throws -> PairsFile {
        if options.strategy == .oracle && !dataset.isLabelled {
            throw RetrievalError("'\(dataset.path)' holds unlabelled images: the oracle strategy pairs each image with a "
                                     + "report of its class, which these images do not have; pair them with another strategy")
        }
        let (images, labels) = embedImages(dataset)
        let imageLabels = dataset.isLabelled ? labels : nil
        let reportSlice = evenSlice(count: reportLabels?.count ?? 0, rank: comm.rank, size: comm.size)
        let localReportLabels = reportLabels.map { labels in reportSlice.map { labels[$0] ?? -1 } }
        return try pairImages(comm: comm, split: split, localImageEmbeddings: images,
                              localReportEmbeddings: localReports, dimension: encoder.embeddingDim,
                              localImageLabels: imageLabels, localReportLabels: localReportLabels, options: options)
    }
}

/// The file `clipit pair` writes beside the pairs files: one summary per split.
public struct PairingRunSummary: Codable, Sendable {
    public var retriever: String
    public var reports: String
    public var ranks: Int
    public var seconds: Double
    public var splits: [PairsSummary]

    public init(retriever: String, reports: String, ranks: Int, seconds: Double, splits: [PairsSummary]) {
        self.retriever = retriever
        self.reports = reports
        self.ranks = ranks
        self.seconds = seconds
        self.splits = splits
    }

    /// Pretty-printed JSON with sorted keys.
    public func jsonData() throws -> Data {
        try prettyJSON(self)
    }
}
