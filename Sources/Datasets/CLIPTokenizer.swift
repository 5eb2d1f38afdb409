import Formats
import Foundation

/// OpenAI CLIP's byte-level BPE tokenizer (Radford et al. 2021), as open_clip's
/// `SimpleTokenizer` and transformers' `CLIPTokenizer` implement it:
///
///     text   → normalise (`TextNormalization`)
///            → pre-tokenise: 's|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
///            → each piece's UTF-8 bytes mapped to printable code points (`byteToUnicode`)
///            → BPE with `</w>` appended to the piece's last symbol; merges by rank
///     ids    = [start] + ids + [end], truncated to the context length keeping `end`,
///              padded with 0
///
/// The vocabulary comes from `vocab.json` + `merges.txt` (Hugging Face) or from open_clip's
/// gzip'd merges file, whose vocabulary is rebuilt exactly as open_clip does: the 256 byte
/// symbols, the same with `</w>`, one token per merge, then start and end of text.
public final class CLIPTokenizer {
    public let normalization: TextNormalization
    public let contextLength: Int
    public let startOfTextId: Int32
    public let endOfTextId: Int32
    /// The largest id + 1.
    public let vocabularySize: Int
    /// Literal special tokens recognised inside the text (open_clip: `<start_of_text>`,
    /// `<end_of_text>`; Hugging Face: `<|startoftext|>`, `<|endoftext|>`).
    public let specialTokens: [String: Int32]

    private let encoder: [String: Int32]
    private let ranks: [SymbolPair: Int]
    private var cache: [String: [Int32]] = [:]
    private let lock = NSLock()

    struct SymbolPair: Hashable {
        let first: String
        let second: String
    }

    /// - Parameters:
    ///   - vocabulary: token → id (symbols in the byte-to-unicode alphabet).
    ///   - merges: BPE merges in rank order.
    ///   - startToken, endToken: the names of the special tokens in `vocabulary`.
    public init(vocabulary: [String: Int32], merges: [(String, String)], startToken: String,
                endToken: String, normalization: TextNormalization, contextLength: Int = 77) throws {
        guard let start = vocabulary[startToken], let end = vocabulary[endToken] else {
            throw ImportFileError(path: "<vocabulary>",
                                  reason: "the vocabulary has no '\(startToken)' / '\(endToken)' token")
        }
        precondition(contextLength >= 2, "CLIPTokenizer: context length \(contextLength) < 2")
        encoder = vocabulary
        var r: [SymbolPair: Int] = [:]
        r.reserveCapacity(merges.count)
        for (i, m) in merges.enumerated() where r[SymbolPair(first: m.0, second: m.1)] == nil {
            r[SymbolPair(first: m.0, second: m.1)] = i
        }
        ranks = r
        startOfTextId = start
        endOfTextId = end
        vocabularySize = Int(vocabulary.values.max() ?? 0) + 1
        specialTokens = [startToken: start, endToken: end]
        self.normalization = normalization
        self.contextLength = contextLength
    }

    /// Hugging Face files: `vocab.json` (token → id) and `merges.txt` (`#version` header,
    /// one "a b" merge per line).
    public convenience init(vocabularyJSON: String, mergesFile: String,
                            normalization: TextNormalization = .huggingFace,
                            contextLength: Int = 77) throws {
        let data = try readFileBytes(vocabularyJSON)
        guard let object = try? JSONSerialization.jsonObject(with: Data(data)) as? [String: Any] else {
            throw ImportFileError(path: vocabularyJSON, reason: "not a JSON object of token → id")
        }
        var vocabulary: [String: Int32] = [:]
        for (token, value) in object {
            guard let id = (value as? NSNumber)?.int32Value else {
                throw ImportFileError(path: vocabularyJSON, reason: "token '\(token)' has a non-integer id")
            }
            vocabulary[token] = id
        }
        let text = String(decoding: try readFileBytes(mergesFile), as: UTF8.self)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if let first = lines.first, first.hasPrefix("#version") { lines.removeFirst() }
        let merges = try Self.parseMerges(lines, path: mergesFile)
        try self.init(vocabulary: vocabulary, merges: merges, startToken: "<|startoftext|>",
                      endToken: "<|endoftext|>", normalization: normalization, contextLength: contextLength)
    }

    /// open_clip's gzip'd merges file (`bpe_simple_vocab_16e6.txt.gz`): the first line is a
    /// header, then at most 49152 − 256 − 2 merges are used (open_clip's slice).
    public convenience init(bpeGzip path: String, normalization: TextNormalization = .openCLIP,
                            contextLength: Int = 77) throws {
        let text = String(decoding: try gunzipFile(path), as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let used = Array(lines.dropFirst().prefix(49152 - 256 - 2))
        let merges = try Self.parseMerges(used, path: path)
        let units = byteToUnicodeOrder.map { String(byteToUnicode[$0]) }
        var tokens = units + units.map { $0 + "</w>" } + merges.map { $0.0 + $0.1 }
        tokens += ["<start_of_text>", "<end_of_text>"]
        var vocabulary: [String: Int32] = [:]
        for (i, t) in tokens.enumerated() { vocabulary[t] = Int32(i) }  // later duplicates win, as dict(zip())
        try self.init(vocabulary: vocabulary, merges: merges, startToken: "<start_of_text>",
                      endToken: "<end_of_text>", normalization: normalization, contextLength: contextLength)
    }

    private static func parseMerges(_ lines: [String], path: String) throws -> [(String, String)] {
        var merges: [(String, String)] = []
        for (n, line) in lines.enumerated() {
            let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if parts.isEmpty { continue }
            guard parts.count == 2 else {
                throw ImportFileError(path: path, reason: "merge line \(n + 2) '\(line)' is not two symbols")
            }
            merges.append((String(parts[0]), String(parts[1])))
        }
        return merges
    }

    // MARK: Encoding

    /// BPE ids of `text` without start/end tokens and without truncation.
    public func encode(_ text: String) -> [Int32] {
        let normalized = normalization.apply(text)
        var ids: [Int32] = []
        for piece in preTokenize(normalized) {
            if let special = specialTokens[piece] { ids.append(special); continue }
            ids.append(contentsOf: bpeIds(piece))
        }
        return ids
    }

    /// `[start] + encode(text) + [end]`, truncated to `contextLength` (the last kept id is
    /// replaced by `end`) and padded with 0: exactly `contextLength` ids.
    public func tokenize(_ text: String, contextLength: Int? = nil) -> [Int32] {
        let L = contextLength ?? self.contextLength
        var ids = [startOfTextId] + encode(text) + [endOfTextId]
        if ids.count > L {
            ids.removeLast(ids.count - L)
            ids[L - 1] = endOfTextId
        }
        return ids + Array(repeating: 0, count: L - ids.count)
    }

    /// Row-major (texts.count, contextLength) ids.
    public func tokenize(_ texts: [String], contextLength: Int? = nil) -> [Int32] {
        texts.flatMap { tokenize($0, contextLength: contextLength) }
    }

    /// The pieces of the CLIP pre-tokenisation pattern, matched left to right at each
    /// position in the order of its alternatives (special tokens first), whitespace skipped.
    public func preTokenize(_ text: String) -> [String] {
        let s = Array(text.unicodeScalars)
        var pieces: [String] = []
        var i = 0
        func piece(_ range: Range<Int>) -> String { String(String.UnicodeScalarView(s[range])) }
        outer: while i < s.count {
            for (literal, _) in specialTokens where s[i] == "<" {
                let l = Array(literal.unicodeScalars)
                if i + l.count <= s.count, Array(s[i..<(i + l.count)]) == l {
                    pieces.append(literal)
                    i += l.count
                    continue outer
                }
            }
            let c = s[i]
            if c == "'", i + 1 < s.count {
                let n = s[i + 1]
                if n == "s" || n == "t" || n == "m" || n == "d" { pieces.append(piece(i..<(i + 2))); i += 2; continue }
                if i + 2 < s.count {
                    let pair = String(String.UnicodeScalarView([n, s[i + 2]]))
                    if pair == "re" || pair == "ve" || pair == "ll" { pieces.append(piece(i..<(i + 3))); i += 3; continue }
                }
            }
            if isLetter(c) {
                var j = i + 1
                while j < s.count, isLetter(s[j]) { j += 1 }
                pieces.append(piece(i..<j))
                i = j
            } else if isNumber(c) {
                pieces.append(piece(i..<(i + 1)))
                i += 1
            } else if c.properties.isWhitespace {
                i += 1
            } else {
                var j = i + 1
                while j < s.count, !s[j].properties.isWhitespace, !isLetter(s[j]), !isNumber(s[j]) { j += 1 }
                pieces.append(piece(i..<j))
                i = j
            }
        }
        return pieces
    }

    /// The ids of one pre-token (cached).
    func bpeIds(_ piece: String) -> [Int32] {
        lock.lock()
        if let hit = cache[piece] { lock.unlock(); return hit }
        lock.unlock()
        var word: [String] = []
        for byte in piece.utf8 { word.append(String(byteToUnicode[Int(byte)])) }
        word[word.count - 1] += "</w>"
        while word.count > 1 {
            var best = Int.max, bestPair: SymbolPair?
            for k in 0..<(word.count - 1) {
                let pair = SymbolPair(first: word[k], second: word[k + 1])
                if let r = ranks[pair], r < best { best = r; bestPair = pair }
            }
            guard let pair = bestPair else { break }
            var merged: [String] = []
            merged.reserveCapacity(word.count)
            var k = 0
            while k < word.count {
                if k + 1 < word.count, word[k] == pair.first, word[k + 1] == pair.second {
                    merged.append(pair.first + pair.second)
                    k += 2
                } else {
                    merged.append(word[k])
                    k += 1
                }
            }
            word = merged
        }
        // A symbol missing from the vocabulary maps to end-of-text (HF's unknown token);
        // with a byte-level vocabulary this cannot happen.
        let ids = word.map { encoder[$0] ?? endOfTextId }
        lock.lock()
        cache[piece] = ids
        lock.unlock()
        return ids
    }
}

/// `\p{L}`: general categories Lu, Ll, Lt, Lm, Lo.
@inline(__always) func isLetter(_ s: Unicode.Scalar) -> Bool {
    switch s.properties.generalCategory {
    case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
    default: return false
    }
}

/// `\p{N}`: general categories Nd, Nl, No.
@inline(__always) func isNumber(_ s: Unicode.Scalar) -> Bool {
    switch s.properties.generalCategory {
    case .decimalNumber, .letterNumber, .otherNumber: return true
    default: return false
    }
}

/// The bytes in the order of `bytes_to_unicode()`'s dict (the order of the first 256 and
/// the next 256 vocabulary entries): the printable bytes, then the others ascending.
let byteToUnicodeOrder: [Int] = {
    let printable = Array(0x21...0x7E) + Array(0xA1...0xAC) + Array(0xAE...0xFF)
    let set = Set(printable)
    return printable + (0..<256).filter { !set.contains($0) }
}()

/// GPT-2 / CLIP's reversible byte → printable code point map: the printable Latin-1 bytes
/// (`!`…`~`, `¡`…`¬`, `®`…`ÿ`) map to themselves, the other 68 bytes to U+0100… in order.
public let byteToUnicode: [Unicode.Scalar] = {
    var table = [Unicode.Scalar](repeating: " ", count: 256)
    var printable = Set<Int>()
    for r in [0x21...0x7E, 0xA1...0xAC, 0xAE...0xFF] { for b in r { printable.insert(b) } }
    var next: UInt32 = 256
    for b in 0..<256 {
        if printable.contains(b) {
            table[b] = Unicode.Scalar(UInt32(b))!
        } else {
            table[b] = Unicode.Scalar(next)!
            next += 1
        }
    }
    return table
}()
