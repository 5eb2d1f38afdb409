import Datasets
import Foundation
import Import
import Model

/// The two towers Stage 1 pairs with (CLIP-IT.md, Setting: f_v, f_t), whatever their origin:
/// a retriever written by `clipit pretrain` (`RetrieverExportEncoder`) or a pretrained
/// CLIP / open_clip model folder such as PLIP or QuiltNet (`PretrainedFolderEncoder`).
/// `PairingPipeline` slices, batches, L2-normalises and searches; an encoder only turns
/// inputs into rows of the shared embedding space.
public protocol PairingEncoder: AnyObject {
    /// D, the width of both embeddings.
    var embeddingDim: Int { get }
    /// Embeddings `(range.count, D)` (not normalised) of the images `range` of `dataset`,
    /// each read as uint8 HWC and prepared with the encoder's own evaluation transform.
    func embedImages(_ dataset: DatasetFile, range: Range<Int>) -> [Float]
    /// Embeddings `(range.count, D)` (not normalised) of the reports `texts[range]`, which
    /// the caller has already cleaned (`ReportCleaning.clean`).
    func embedReports(_ texts: [String], range: Range<Int>) -> [Float]
}

/// A retriever export (`clipit pretrain`): its towers, word tokenizer and image
/// normalisation (the dataset evaluation transform at the tower's image size).
public final class RetrieverExportEncoder: PairingEncoder {
    public let model: RetrieverModel
    public let tokenizer: WordTokenizer
    public let normalization: Normalization
    private let transformer: ImageTransformer

    /// Loads the export: the model, its tokenizer and image normalisation from the metadata.
    public init(path: String) throws {
        let (model, metadata) = try RetrieverModel.load(path: path)
        guard let state = metadata[RetrieverModel.tokenizerMetadataKey] else {
            throw RetrieverError("\(path) has no tokenizer ('clipit.tokenizer' metadata); export it with `clipit pretrain`")
        }
        let tokenizer = try WordTokenizer(stateJSON: state)
        guard tokenizer.contextLength == model.config.text.contextLength,
              tokenizer.vocabularySize == model.config.text.vocabularySize else {
            throw RetrieverError("\(path): the stored tokenizer does not fit the text tower")
        }
        let normalizationName = metadata[RetrieverModel.normalizationMetadataKey] ?? "clip"
        guard let named = Normalization(named: normalizationName) else {
            throw RetrieverError("\(path): unknown clipit.retriever.normalization '\(normalizationName)' "
                                 + "(\(Normalization.names.joined(separator: ", ")))")
        }
        normalization = named
        self.model = model
        self.tokenizer = tokenizer
        transformer = ImageTransformer(config: .evaluation(outputSize: model.config.vision.imageSize,
                                                           normalization: normalization))
    }

    public var embeddingDim: Int { model.embeddingDim }

    public func embedImages(_ dataset: DatasetFile, range: Range<Int>) -> [Float] {
        let per = transformer.outputCount
        var images = [Float](repeating: 0, count: range.count * per)
        images.withUnsafeMutableBufferPointer { buffer in
            for (b, i) in range.enumerated() {
                transformer.apply(dataset.imageBytes(at: i), height: dataset.height, width: dataset.width,
                                  channels: dataset.channels, seed: 0, epoch: 0, index: i,
                                  into: buffer.baseAddress! + b * per)
            }
        }
        return images.withUnsafeBufferPointer { model.embedImages($0.baseAddress!, batch: range.count, normalize: false) }
    }

    public func embedReports(_ texts: [String], range: Range<Int>) -> [Float] {
        var tokens: [Int32] = []
        tokens.reserveCapacity(range.count * tokenizer.contextLength)
        for j in range { tokens += tokenizer.encode(texts[j]) }
        return tokens.withUnsafeBufferPointer { model.embedTexts($0.baseAddress!, batch: range.count, normalize: false) }
    }
}

/// A pretrained CLIP-style model folder (transformers `CLIPModel` such as PLIP, open_clip
/// such as QuiltNet, CONCH; `PretrainedModel`): images through the model's own
/// preprocessing (`ImagePreprocessing`, torchvision-on-PIL exact), reports through its own
/// tokenizer (CLIP BPE, CONCH's byte-level BPE), both towers' projected embeddings — what
/// `clipit embed` computes.
public final class PretrainedFolderEncoder: PairingEncoder {
    public let encoders: PretrainedEncoders
    public let preprocessing: ImagePreprocessing
    public let tokenizer: any PretrainedTokenizer

    /// Imports both towers of the folder at `directory`.
    public init(directory: String) throws {
        let model = try PretrainedModel(directory: directory)
        guard model.vision != nil, model.text != nil else {
            throw RetrieverError("\(directory) is a \(model.family.rawValue) folder with one tower; pairing needs an "
                                 + "image and a text tower (a transformers CLIPModel or open_clip folder)")
        }
        let encoders = try PretrainedEncoders(model, vision: true, text: true)
        guard let imageWidth = encoders.imageEmbeddingDim, imageWidth == encoders.textEmbeddingDim else {
            throw RetrieverError("\(directory): the towers project to different widths (image "
                                 + "\(encoders.imageEmbeddingDim ?? 0), text \(encoders.textEmbeddingDim ?? 0))")
        }
        guard let preprocessing = model.preprocessing, preprocessing.cropSize == model.vision!.imageSize else {
            throw RetrieverError("\(directory): the preprocessing crops \(model.preprocessing?.cropSize ?? 0) px but the "
                                 + "image tower takes \(model.vision!.imageSize) px; fix the folder's preprocessing config")
        }
        guard let tokenizer = encoders.tokenizer else {
            throw RetrieverError("\(directory): no tokenizer files (vocab.json + merges.txt, or a BPE .txt.gz)")
        }
        self.encoders = encoders
        self.preprocessing = preprocessing
        self.tokenizer = tokenizer
    }

    public var embeddingDim: Int { encoders.imageEmbeddingDim! }

    public func embedImages(_ dataset: DatasetFile, range: Range<Int>) -> [Float] {
        let per = preprocessing.outputCount
        var pixels = [Float](repeating: 0, count: range.count * per)
        pixels.withUnsafeMutableBufferPointer { buffer in
            for (b, i) in range.enumerated() {
                preprocessing.apply(dataset.imageBytes(at: i), height: dataset.height, width: dataset.width,
                                    channels: dataset.channels, into: buffer.baseAddress! + b * per)
            }
        }
        return pixels.withUnsafeBufferPointer { encoders.embedImages($0.baseAddress!, batch: range.count) }
    }

    public func embedReports(_ texts: [String], range: Range<Int>) -> [Float] {
        encoders.embedTokens(tokenizer.tokenize(Array(texts[range])), batch: range.count)
    }
}

/// Whether `path` is a directory (a pretrained model folder) rather than a file.
public func isModelFolder(_ path: String) -> Bool {
    var isDirectory: ObjCBool = false
    return !path.isEmpty && FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
}

/// The encoder of `path`: a model folder (`PretrainedFolderEncoder`) or a retriever export
/// file (`RetrieverExportEncoder`).
public func makePairingEncoder(path: String) throws -> any PairingEncoder {
    isModelFolder(path) ? try PretrainedFolderEncoder(directory: path) : try RetrieverExportEncoder(path: path)
}
