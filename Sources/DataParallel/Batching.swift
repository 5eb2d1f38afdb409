import Datasets
import Foundation
import Kernels
import Model

// MARK: - Paired report tokens

/// The token ids of every report of a corpus, `(reports, L)`, and each image's paired
/// report (from a pairs file): what the distillation term and the text-only classifier read.
public struct PairedText {
    /// Token ids, report j at `tokens[j*L ..< (j+1)*L]`.
    public let tokens: [Int32]
    public let contextLength: Int
    /// The paired report of every image of the split.
    public let reportOfImage: [Int]

    /// Cleans every report (`ReportCleaning.clean`), removes `wordDropFraction` of its
    /// words (`ReportCleaning.dropWords` seeded with `seed` and the report index: the same
    /// words every epoch and every run of that seed), and encodes it. `reportOfImage`
    /// (from a pairs file) must index into `corpus`.
    public init(corpus: ReportCorpus, cleaned: [String]? = nil, reportOfImage: [Int], encoding: any TextEncoding,
                wordDropFraction: Double, seed: UInt64) {
        self.init(tokens: Self.encode(cleaned ?? corpus.texts.map(ReportCleaning.clean), encoding: encoding,
                                      wordDropFraction: wordDropFraction, seed: seed),
                  contextLength: encoding.contextLength, reportOfImage: reportOfImage)
    }

    /// Already encoded reports `(reports, L)` and each image's report index.
    public init(tokens: [Int32], contextLength: Int, reportOfImage: [Int]) {
        precondition(contextLength > 0 && tokens.count % contextLength == 0,
                     "PairedText: \(tokens.count) token ids are not rows of \(contextLength)")
        self.tokens = tokens
        self.contextLength = contextLength
        self.reportOfImage = reportOfImage
    }

    /// The number of encoded reports.
    public var reportCount: Int { tokens.count / contextLength }

    /// The same encoded reports paired with another split's images (no re-encoding).
    public func paired(with reportOfImage: [Int]) -> PairedText {
        PairedText(tokens: tokens, contextLength: contextLength, reportOfImage: reportOfImage)
    }

    /// The token ids of every text, `(texts, L)`, after removing `wordDropFraction` of the
    /// words of text j (seeded by `seed` and j).
    public static func encode(_ texts: [String], encoding: any TextEncoding, wordDropFraction: Double,
                              seed: UInt64) -> [Int32] {
        var tokens = [Int32]()
        tokens.reserveCapacity(texts.count * encoding.contextLength)
        for (j, text) in texts.enumerated() {
            let kept = wordDropFraction > 0
                ? ReportCleaning.dropWords(text, fraction: wordDropFraction, seed: seed, reportIndex: j) : text
            tokens.append(contentsOf: encoding.encode(kept))
        }
        return tokens
    }
}

// MARK: - Batch assembly

/// Fills the local slice of a batch: images decoded from a `.cds` file through the
/// dataset transforms (the random choices of image i seeded by (seed, epoch, i), so they
/// do not depend on the rank that draws them), each image's paired-report tokens and its
/// label. Buffers are allocated once for the largest slice and reused.
///
/// With `preprocessing` (a pretrained tower's exact evaluation transform,
/// `data.preprocessing`), images are prepared with it instead of `transform`: what the
/// trainer does for evaluation and for training without augmentation.
public final class BatchAssembler {
    public let dataset: DatasetFile
    public let transformer: ImageTransformer
    public let preprocessing: ImagePreprocessing?
    /// Each item's paired report (replaced when an unlabelled pool or another target joins).
    public var text: PairedText?
    /// Every report's embedding t `(reports, width)` when the model's text tower is frozen
    /// (computed once per run, `CLIPITModel.embedReports`): batches then carry each image's
    /// report row instead of its token ids.
    public var reportEmbeddings: (table: [Float], width: Int)?
    /// Unlabelled images (CLIP-IT.md decision 9): items `dataset.count ..<` `dataset.count +
    /// unlabeled.count` of a batch, with label −1 (they join the distillation terms only);
    /// `text.reportOfImage` then covers both datasets, labelled items first.
    public var unlabeled: DatasetFile?
    /// The teachers' logits of every item (labelled, then unlabelled) `(items, classes)`,
    /// for the soft-target term.
    public var teacherLogits: (table: [Float], classes: Int)?
    /// Whether batches carry the whole global batch's targets t and report ids (the
    /// contrastive term; needs `reportEmbeddings`).
    public var carriesBatchTargets = false
    private var images: Tensor
    private var tokens = IntBuffer()
    private var labels = IntBuffer()
    private var textRows = Tensor(shape: [0])
    private var teacherRows = Tensor(shape: [0])
    private var rowIDs = IntBuffer()
    private var batchTargets = Tensor(shape: [0])
    private var batchTargetIDs = IntBuffer()

    public init(dataset: DatasetFile, transform: TransformConfig, text: PairedText?,
                preprocessing: ImagePreprocessing? = nil) {
        precondition(preprocessing.map { $0.cropSize == transform.outputSize } ?? true,
                     "BatchAssembler: the preprocessing and the transform give different image sizes")
        self.dataset = dataset
        transformer = ImageTransformer(config: transform)
        self.preprocessing = preprocessing
        self.text = text
        images = Tensor(shape: [0])
    }

    /// The number of items: the labelled dataset's, then the unlabelled pool's.
    public var itemCount: Int { dataset.count + (unlabeled?.count ?? 0) }

    /// The dataset and index within it of item `i`.
    private func source(_ i: Int) -> (DatasetFile, Int) {
        if i < dataset.count { return (dataset, i) }
        guard let unlabeled else { preconditionFailure("BatchAssembler: item \(i) of \(dataset.count) without an unlabelled pool") }
        return (unlabeled, i - dataset.count)
    }

    /// The local batch of items `indices` (global item indices, in order). `inputs` says
    /// which buffers to fill; labels are always filled (−1 for unlabelled items).
    /// `globalBatch`: every item of the global batch this slice belongs to (all ranks), for
    /// the distillation terms (`ModelBatch.distillation`); nil outside training.
    public func assemble<Indices: RandomAccessCollection<Int>>(_ indices: Indices, inputs: ModelInputs, seed: UInt64,
                                                                epoch: Int, globalBatch: ArraySlice<Int>? = nil) -> ModelBatch {
        let n = indices.count
        labels.reserve(n)
        for (b, i) in indices.enumerated() { labels.data[b] = i < dataset.count ? Int32(dataset.label(at: i)) : -1 }
        var imagePointer: UnsafePointer<Float>?
        if inputs.contains(.images) {
            let per = transformer.outputCount
            if images.count < n * per { images = Tensor(shape: [n * per]) }
            for (b, i) in indices.enumerated() {
                let (file, index) = source(i)
                if let preprocessing {
                    preprocessing.apply(file.imageBytes(at: index), height: file.height, width: file.width,
                                        channels: file.channels, into: images.data + b * per)
                } else {
                    // Seeded by the item (unlabelled items after the labelled ones): unique per image.
                    transformer.apply(file.imageBytes(at: index), height: file.height, width: file.width,
                                      channels: file.channels, seed: seed, epoch: epoch, index: i,
                                      into: images.data + b * per)
                }
            }
            imagePointer = UnsafePointer(images.data)
        }
        let distillation = globalBatch.map { distillationInputs(indices, globalBatch: $0) }
        if inputs.contains(.tokens), let text, let (table, width) = reportEmbeddings {
            if textRows.count < n * width { textRows = Tensor(shape: [n * width]) }
            table.withUnsafeBufferPointer { rows in
                for (b, i) in indices.enumerated() {
                    (textRows.data + b * width).update(from: rows.baseAddress! + text.reportOfImage[i] * width, count: width)
                }
            }
            return ModelBatch(count: n, images: imagePointer, tokens: nil, labels: UnsafePointer(labels.data),
                              textEmbeddings: UnsafePointer(textRows.data), distillation: distillation)
        }
        var tokenPointer: UnsafePointer<Int32>?
        if inputs.contains(.tokens) {
            guard let text else { preconditionFailure("BatchAssembler: the model reads tokens but no paired text was loaded") }
            let L = text.contextLength
            tokens.reserve(n * L)
            for (b, i) in indices.enumerated() {
                let j = text.reportOfImage[i]
                for t in 0..<L { tokens.data[b * L + t] = text.tokens[j * L + t] }
            }
            tokenPointer = UnsafePointer(tokens.data)
        }
        return ModelBatch(count: n, images: imagePointer, tokens: tokenPointer, labels: UnsafePointer(labels.data),
                          distillation: distillation)
    }

    /// The distillation terms' inputs of local items `indices` of the global batch `global`:
    /// its labelled count, the teachers' logits of the local rows, each local row's report id
    /// and, when `carriesBatchTargets`, every global row's target t and report id.
    private func distillationInputs<Indices: RandomAccessCollection<Int>>(_ indices: Indices,
                                                                         globalBatch global: ArraySlice<Int>) -> DistillationInputs {
        let n = indices.count
        var inputs = DistillationInputs(labelledInGlobalBatch: global.reduce(0) { $0 + ($1 < dataset.count ? 1 : 0) })
        if let (table, c) = teacherLogits {
            if teacherRows.count < n * c { teacherRows = Tensor(shape: [n * c]) }
            table.withUnsafeBufferPointer { rows in
                for (b, i) in indices.enumerated() { (teacherRows.data + b * c).update(from: rows.baseAddress! + i * c, count: c) }
            }
            inputs.teacherLogits = UnsafePointer(teacherRows.data)
        }
        if let text {
            rowIDs.reserve(n)
            for (b, i) in indices.enumerated() { rowIDs.data[b] = Int32(text.reportOfImage[i]) }
            inputs.rowIDs = UnsafePointer(rowIDs.data)
            if carriesBatchTargets, let (table, width) = reportEmbeddings {
                let count = global.count
                if batchTargets.count < count * width { batchTargets = Tensor(shape: [count * width]) }
                batchTargetIDs.reserve(count)
                table.withUnsafeBufferPointer { rows in
                    for (g, i) in global.enumerated() {
                        let report = text.reportOfImage[i]
                        (batchTargets.data + g * width).update(from: rows.baseAddress! + report * width, count: width)
                        batchTargetIDs.data[g] = Int32(report)
                    }
                }
                inputs.batchTargets = UnsafePointer(batchTargets.data)
                inputs.batchTargetIDs = UnsafePointer(batchTargetIDs.data)
                inputs.batchTargetCount = count
            }
        }
        return inputs
    }
}

/// A growable Int32 buffer with a stable pointer between growths (token ids, labels).
final class IntBuffer {
    private(set) var data = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
    private var capacity = 1

    func reserve(_ count: Int) {
        guard count > capacity else { return }
        data.deallocate()
        data = UnsafeMutablePointer<Int32>.allocate(capacity: count)
        data.initialize(repeating: 0, count: count)
        capacity = count
    }

    deinit { data.deallocate() }
}
