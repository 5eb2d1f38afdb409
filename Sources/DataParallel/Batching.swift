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
    public let text: PairedText?
    /// Every report's embedding t `(reports, width)` when the model's text tower is frozen
    /// (computed once per run, `CLIPITModel.embedReports`): batches then carry each image's
    /// report row instead of its token ids.
    public var reportEmbeddings: (table: [Float], width: Int)?
    private var images: Tensor
    private var tokens = IntBuffer()
    private var labels = IntBuffer()
    private var textRows = Tensor(shape: [0])

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

    /// The local batch of dataset items `indices` (global item indices, in order).
    /// `inputs` says which buffers to fill; labels are always filled.
    public func assemble<Indices: RandomAccessCollection<Int>>(_ indices: Indices, inputs: ModelInputs, seed: UInt64,
                                                                epoch: Int) -> ModelBatch {
        let n = indices.count
        labels.reserve(n)
        for (b, i) in indices.enumerated() { labels.data[b] = Int32(dataset.label(at: i)) }
        var imagePointer: UnsafePointer<Float>?
        if inputs.contains(.images) {
            let per = transformer.outputCount
            if images.count < n * per { images = Tensor(shape: [n * per]) }
            for (b, i) in indices.enumerated() {
                if let preprocessing {
                    preprocessing.apply(dataset.imageBytes(at: i), height: dataset.height, width: dataset.width,
                                        channels: dataset.channels, into: images.data + b * per)
                } else {
                    transformer.apply(dataset.imageBytes(at: i), height: dataset.height, width: dataset.width,
                                      channels: dataset.channels, seed: seed, epoch: epoch, index: i,
                                      into: images.data + b * per)
                }
            }
            imagePointer = UnsafePointer(images.data)
        }
        var tokenPointer: UnsafePointer<Int32>?
        if inputs.contains(.tokens), let text, let (table, width) = reportEmbeddings {
            if textRows.count < n * width { textRows = Tensor(shape: [n * width]) }
            table.withUnsafeBufferPointer { rows in
                for (b, i) in indices.enumerated() {
                    (textRows.data + b * width).update(from: rows.baseAddress! + text.reportOfImage[i] * width, count: width)
                }
            }
            return ModelBatch(count: n, images: imagePointer, tokens: nil, labels: UnsafePointer(labels.data),
                              textEmbeddings: UnsafePointer(textRows.data))
        }
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
        return ModelBatch(count: n, images: imagePointer, tokens: tokenPointer, labels: UnsafePointer(labels.data))
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
