import Foundation
import Kernels
import Datasets
import Import

// MARK: - Text encoding

/// Turns a (cleaned) report into the fixed-length token ids the text tower reads.
///
/// Any tokenizer plugs in here (the CLIP BPE for pretrained CLIP text towers); the
/// trainer only needs `encode` and the sizes, and stores `stateJSON` in checkpoints so
/// that evaluation encodes the reports exactly as training did.
public protocol TextEncoding {
    /// L: every encoding has exactly this many ids.
    var contextLength: Int { get }
    /// Ids are in `0..<vocabularySize`.
    var vocabularySize: Int { get }
    /// The id the text tower pools at.
    var endOfTextId: Int32 { get }
    /// `contextLength` ids: start-of-text, the text's tokens (truncated), end-of-text,
    /// then padding.
    func encode(_ text: String) -> [Int32]
    /// Everything needed to rebuild this encoding (JSON), for checkpoints.
    var stateJSON: String { get }
}

/// A deterministic word-level tokenizer with a vocabulary built from the report corpus:
/// the default text encoding for towers trained from scratch (the synthetic benchmark).
///
/// - Words: the text is lowercased; a token is a maximal run of letters and digits, or
///   any other single non-space character (so `3.5cm,` gives `3 . 5cm ,`).
/// - Vocabulary: every token of the cleaned corpus counted once per occurrence, sorted by
///   count (descending) then by the token's UTF-8 bytes; the first `vocabularySize − 4`
///   are kept. The same corpus always gives the same vocabulary.
/// - Ids: 0 padding, 1 start-of-text, 2 unknown word, 3 … V−2 the vocabulary in order,
///   V−1 end-of-text (the largest id, as in CLIP).
/// - Encoding: [1, w₁, …, w_k, V−1, 0, …, 0] with k ≤ L − 2 (longer texts are truncated).
public struct WordTokenizer: TextEncoding, Equatable, Sendable {
    public static let paddingId: Int32 = 0
    public static let startOfTextId: Int32 = 1
    public static let unknownId: Int32 = 2
    static let firstWordId = 3

    public let contextLength: Int
    public let vocabularySize: Int
    /// The kept words, in id order (id = index + 3).
    public let words: [String]
    private let ids: [String: Int32]

    public var endOfTextId: Int32 { Int32(vocabularySize - 1) }

    /// Builds the vocabulary from `texts` (pass cleaned reports).
    public init(corpus texts: [String], vocabularySize: Int, contextLength: Int) {
        precondition(vocabularySize >= 5 && contextLength >= 3,
                     "WordTokenizer: vocabulary \(vocabularySize) / context \(contextLength) too small")
        var counts: [String: Int] = [:]
        for text in texts { for token in Self.tokens(of: text) { counts[token, default: 0] += 1 } }
        let ranked = counts.sorted { a, b in
            a.value != b.value ? a.value > b.value : Array(a.key.utf8).lexicographicallyPrecedes(Array(b.key.utf8))
        }
        self.init(words: ranked.prefix(vocabularySize - 4).map(\.key), vocabularySize: vocabularySize,
                  contextLength: contextLength)
    }

    /// Rebuilds a tokenizer from its vocabulary (`stateJSON`).
    public init(words: [String], vocabularySize: Int, contextLength: Int) {
        precondition(words.count <= vocabularySize - 4, "WordTokenizer: \(words.count) words for vocabulary \(vocabularySize)")
        self.words = words
        self.vocabularySize = vocabularySize
        self.contextLength = contextLength
        var ids: [String: Int32] = [:]
        for (i, word) in words.enumerated() { ids[word] = Int32(i + Self.firstWordId) }
        self.ids = ids
    }

    public static func == (a: WordTokenizer, b: WordTokenizer) -> Bool {
        a.words == b.words && a.vocabularySize == b.vocabularySize && a.contextLength == b.contextLength
    }

    /// The tokens of `text` (lowercased runs of letters/digits; other characters alone).
    public static func tokens(of text: String) -> [String] {
        var tokens: [String] = []
        var current = ""
        for character in text.lowercased() {
            if character.isLetter || character.isNumber {
                current.append(character)
                continue
            }
            if !current.isEmpty { tokens.append(current); current = "" }
            if !character.isWhitespace { tokens.append(String(character)) }
        }
        if !current.isEmpty { tokens.append(current) }
        return tokens
    }

    public func encode(_ text: String) -> [Int32] {
        var out = [Int32](repeating: Self.paddingId, count: contextLength)
        out[0] = Self.startOfTextId
        var n = 1
        for token in Self.tokens(of: text) where n < contextLength - 1 {
            out[n] = ids[token] ?? Self.unknownId
            n += 1
        }
        out[n] = endOfTextId
        return out
    }

    struct State: Codable {
        var kind: String
        var vocabularySize: Int
        var contextLength: Int
        var words: [String]
    }

    public var stateJSON: String {
        let state = State(kind: "word", vocabularySize: vocabularySize, contextLength: contextLength, words: words)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]   // the same bytes in every process
        return String(decoding: try! encoder.encode(state), as: UTF8.self)
    }

    /// Rebuilds the tokenizer `stateJSON` describes.
    public init(stateJSON: String) throws {
        guard let state = try? JSONDecoder().decode(State.self, from: Data(stateJSON.utf8)), state.kind == "word" else {
            throw TrainingError("the checkpoint's tokenizer state is not a word tokenizer this build can read")
        }
        self.init(words: state.words, vocabularySize: state.vocabularySize, contextLength: state.contextLength)
    }
}

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
    /// words every epoch and every run of that seed), and encodes it.
    public init(corpus: ReportCorpus, cleaned: [String]? = nil, pairs: PairsFile, imageCount: Int,
                encoding: any TextEncoding, wordDropFraction: Double, seed: UInt64, pairsPath: String) throws {
        try Self.check(pairs, imageCount: imageCount, reportCount: corpus.count, pairsPath: pairsPath)
        self.init(tokens: Self.encode(cleaned ?? corpus.texts.map(ReportCleaning.clean), encoding: encoding,
                                      wordDropFraction: wordDropFraction, seed: seed),
                  contextLength: encoding.contextLength, reportOfImage: pairs.reportIndices)
    }

    /// Already encoded reports `(reports, L)` and each image's report index.
    public init(tokens: [Int32], contextLength: Int, reportOfImage: [Int]) {
        precondition(contextLength > 0 && tokens.count % contextLength == 0,
                     "PairedText: \(tokens.count) token ids are not rows of \(contextLength)")
        self.tokens = tokens
        self.contextLength = contextLength
        self.reportOfImage = reportOfImage
    }

    /// The same encoded reports paired with another split's images (no re-encoding).
    public func paired(with pairs: PairsFile, imageCount: Int, pairsPath: String) throws -> PairedText {
        try Self.check(pairs, imageCount: imageCount, reportCount: tokens.count / contextLength, pairsPath: pairsPath)
        return PairedText(tokens: tokens, contextLength: contextLength, reportOfImage: pairs.reportIndices)
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

    private static func check(_ pairs: PairsFile, imageCount: Int, reportCount: Int, pairsPath: String) throws {
        guard pairs.imageCount == imageCount else {
            throw TrainingError("pairs file '\(pairsPath)' has \(pairs.imageCount) images but the dataset has "
                                + "\(imageCount): pair the same split again (clipit pair) or pass the matching pairs file")
        }
        guard pairs.reportCount == reportCount else {
            throw TrainingError("pairs file '\(pairsPath)' indexes \(pairs.reportCount) reports but the corpus has "
                                + "\(reportCount): pass the corpus the pairs were made from (--reports)")
        }
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
    private var images: Tensor
    private var tokens = IntBuffer()
    private var labels = IntBuffer()

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
    public func assemble(_ indices: [Int], inputs: ModelInputs, seed: UInt64, epoch: Int) -> ModelBatch {
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
