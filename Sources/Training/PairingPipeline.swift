import Foundation
import Datasets
import Distributed
import Kernels

/// Stage 1 end to end (CLIP-IT.md): embed the report corpus and every split's images
/// with a pretrained retriever and pair each image with a report.
///
/// Work split: each rank embeds its even slice of the reports and of each split's
/// images (`evenSlice`, rank order = global order); `pairImages` then shares the report
/// embeddings with one `allgatherv`, searches exactly (blocked top-k) for the rank's own
/// images and gathers the records, so every rank holds the same `PairsFile`, identical
/// to a single-rank run. Rank 0 writes the files.
public final class PairingPipeline {
    public let model: RetrieverModel
    public let tokenizer: WordTokenizer
    public let normalization: Normalization
    public let comm: any Communicator
    public let batchSize: Int

    /// Loads a retriever export (`clipit pretrain`): the model, its tokenizer and image
    /// normalisation from the file's metadata.
    public init(retrieverPath: String, comm: any Communicator, batchSize: Int = 128) throws {
        let (model, metadata) = try RetrieverModel.load(path: retrieverPath)
        guard let state = metadata["clipit.tokenizer"] else {
            throw RetrieverError("\(retrieverPath) has no tokenizer ('clipit.tokenizer' metadata); export it with `clipit pretrain`")
        }
        let tokenizer = try WordTokenizer(stateJSON: state)
        guard tokenizer.contextLength == model.config.text.contextLength,
              tokenizer.vocabularySize == model.config.text.vocabularySize else {
            throw RetrieverError("\(retrieverPath): the stored tokenizer does not fit the text tower")
        }
        switch metadata["clipit.retriever.normalization"] ?? "clip" {
        case "imagenet": normalization = .imagenet
        case "unit": normalization = .unit
        default: normalization = .clip
        }
        self.model = model
        self.tokenizer = tokenizer
        self.comm = comm
        self.batchSize = batchSize
    }

    /// This rank's slice of the L2-normalised report embeddings `(slice, D)`, reports
    /// cleaned with `ReportCleaning.clean` and encoded with the retriever's tokenizer.
    public func embedReports(_ corpus: ReportCorpus) -> [Float] {
        let mine = evenSlice(count: corpus.count, rank: comm.rank, size: comm.size)
        let L = tokenizer.contextLength
        return RetrieverModel.embedInBatches(count: mine.count, batchSize: batchSize, fill: { range -> [Int32] in
            var tokens: [Int32] = []
            tokens.reserveCapacity(range.count * L)
            for j in range { tokens += tokenizer.encode(ReportCleaning.clean(corpus.texts[mine.lowerBound + j])) }
            return tokens
        }, embed: { model.embedTexts($0, batch: $1) })
    }

    /// This rank's slice of the L2-normalised image embeddings `(slice, D)` of `dataset`
    /// (evaluation transform at the retriever's image size) and their labels.
    public func embedImages(_ dataset: DatasetFile) -> (embeddings: [Float], labels: [Int]) {
        let mine = evenSlice(count: dataset.count, rank: comm.rank, size: comm.size)
        let transformer = ImageTransformer(config: .evaluation(outputSize: model.config.vision.imageSize,
                                                               normalization: normalization))
        let per = transformer.outputCount
        let embeddings = RetrieverModel.embedInBatches(count: mine.count, batchSize: batchSize, fill: { range -> [Float] in
            var images = [Float](repeating: 0, count: range.count * per)
            images.withUnsafeMutableBufferPointer { buffer in
                for (b, j) in range.enumerated() {
                    let i = mine.lowerBound + j
                    transformer.apply(dataset.imageBytes(at: i), height: dataset.height, width: dataset.width,
                                      channels: dataset.channels, seed: 0, epoch: 0, index: i,
                                      into: buffer.baseAddress! + b * per)
                }
            }
            return images
        }, embed: { model.embedImages($0, batch: $1) })
        return (embeddings, mine.map { dataset.label(at: $0) })
    }

    /// Pairs every image of `dataset` with a report. `localReports` is this rank's slice
    /// from `embedReports`, `reportLabels` every report's label (nil: unknown) or nil.
    /// Every rank must call it; all return the same pairs.
    public func pair(_ dataset: DatasetFile, split: String, localReports: [Float], reportLabels: [Int?]?,
                     options: PairingOptions) throws -> PairsFile {
        let (images, imageLabels) = embedImages(dataset)
        let reportSlice = evenSlice(count: reportLabels?.count ?? 0, rank: comm.rank, size: comm.size)
        let localReportLabels = reportLabels.map { labels in reportSlice.map { labels[$0] ?? -1 } }
        return try pairImages(comm: comm, split: split, localImageEmbeddings: images,
                              localReportEmbeddings: localReports, dimension: model.embeddingDim,
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
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }
}
