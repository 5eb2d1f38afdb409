import Foundation

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
            throw TokenizerError("the checkpoint's tokenizer state is not a word tokenizer this build can read")
        }
        self.init(words: state.words, vocabularySize: state.vocabularySize, contextLength: state.contextLength)
    }
}

/// A tokenizer that cannot be built or rebuilt from its stored state; `description` says
/// what to do.
public struct TokenizerError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
