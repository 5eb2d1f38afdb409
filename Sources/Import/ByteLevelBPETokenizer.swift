import Datasets
import Foundation

/// A byte-level BPE tokenizer read from a Hugging Face `tokenizers` JSON file (GPT-2 /
/// RoBERTa style; CONCH's `conch_byte_level_bpe_uncased.json`), reproducing what
/// `PreTrainedTokenizerFast(...)(texts, max_length=L, truncation=True, padding='max_length')`
/// returns for the configuration CONCH uses:
///
/// 1. special tokens (`added_tokens`, `normalized: false`) are split out of the raw text first,
///    leftmost and, at one position, longest first;
/// 2. every other segment is normalised — `Sequence[NFD, StripAccents, Lowercase]` (accents
///    are the combining marks, general category M, left by NFD; lowercase per code point) —
///    and pre-tokenised by `ByteLevel(add_prefix_space=True)`: a space is prepended unless the
///    segment starts with one, then GPT-2's pattern
///    `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` cuts it, and
///    each piece's UTF-8 bytes become GPT-2's printable code points;
/// 3. BPE merges by rank (no end-of-word suffix) and the vocabulary give the ids;
/// 4. `TemplateProcessing` `[start] $A [end]`; truncation keeps the first L − 2 ids; padding 0.
///
/// Other normalizers, pre-tokenizers, post-processors and models are refused with the file
/// named. No ftfy, HTML unescaping or whitespace collapsing happens (CONCH's tokenizer has none).
public final class ByteLevelBPETokenizer {
    public let contextLength: Int
    public let startOfTextId: Int32
    public let endOfTextId: Int32
    public let padId: Int32
    /// Ids are below this (the largest id + 1).
    public let vocabularySize: Int
    /// Special tokens by their text, longest first (the order they are matched in).
    public let specialTokens: [(String, Int32)]
    private let vocabulary: [String: Int32]
    private let ranks: [String: Int]     // "a b" → merge rank
    private let lock = NSLock()
    private var cache: [String: [Int32]] = [:]

    /// Reads `path`; `contextLength` is L, the ids per text (start and end included).
    public init(json path: String, contextLength: Int) throws {
        func fail(_ reason: String) -> TokenizerError { TokenizerError("'\(path)': \(reason)") }
        guard let data = FileManager.default.contents(atPath: path),
              let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw fail("cannot read it as a JSON object (a Hugging Face tokenizers file)")
        }
        guard let model = root["model"] as? [String: Any], model["type"] as? String == "BPE",
              let vocab = model["vocab"] as? [String: Any], let merges = model["merges"] as? [Any] else {
            throw fail("'model' is not a BPE model with 'vocab' and 'merges'")
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] where !((model[key] ?? NSNull()) is NSNull) {
            throw fail("'model.\(key)' is set; only plain byte-level BPE is supported")
        }
        let normalizers = ((root["normalizer"] as? [String: Any])?["normalizers"] as? [[String: Any]])?
            .compactMap { $0["type"] as? String }
        guard normalizers == ["NFD", "StripAccents", "Lowercase"] else {
            throw fail("normalizer must be Sequence[NFD, StripAccents, Lowercase] (CONCH's)")
        }
        guard let pre = root["pre_tokenizer"] as? [String: Any], pre["type"] as? String == "ByteLevel",
              pre["add_prefix_space"] as? Bool == true, (pre["use_regex"] as? Bool ?? true) else {
            throw fail("pre_tokenizer must be ByteLevel with add_prefix_space and use_regex")
        }
        var vocabulary: [String: Int32] = [:]
        for (token, id) in vocab {
            guard let n = id as? NSNumber else { throw fail("vocabulary id of '\(token)' is not a number") }
            vocabulary[token] = Int32(n.intValue)
        }
        var specials: [(String, Int32)] = []
        for case let token as [String: Any] in root["added_tokens"] as? [Any] ?? [] {
            guard let content = token["content"] as? String, let id = (token["id"] as? NSNumber)?.int32Value else { continue }
            guard token["normalized"] as? Bool != true else { throw fail("normalized added token '\(content)' is not supported") }
            specials.append((content, id))
            vocabulary[content] = id
        }
        specialTokens = specials.sorted { $0.0.unicodeScalars.count > $1.0.unicodeScalars.count }
        var ranks: [String: Int] = [:]
        for (rank, merge) in merges.enumerated() {
            let pair: [String]
            if let s = merge as? String { pair = s.split(separator: " ", omittingEmptySubsequences: false).map(String.init) }
            else if let a = merge as? [String] { pair = a } else { pair = [] }
            guard pair.count == 2 else { throw fail("merge \(rank) is not a pair: \(merge)") }
            if ranks[pair[0] + " " + pair[1]] == nil { ranks[pair[0] + " " + pair[1]] = rank }
        }
        // TemplateProcessing: [SpecialToken start, Sequence A, SpecialToken end].
        guard let post = root["post_processor"] as? [String: Any], post["type"] as? String == "TemplateProcessing",
              let single = post["single"] as? [[String: Any]], single.count == 3,
              let start = (single[0]["SpecialToken"] as? [String: Any])?["id"] as? String,
              (single[1]["Sequence"] as? [String: Any])?["id"] as? String == "A",
              let end = (single[2]["SpecialToken"] as? [String: Any])?["id"] as? String,
              let startId = vocabulary[start], let endId = vocabulary[end] else {
            throw fail("post_processor must be TemplateProcessing '<start> $A <end>'")
        }
        guard contextLength >= 2 else { throw fail("context length \(contextLength) leaves no room for the text") }
        self.contextLength = contextLength
        startOfTextId = startId
        endOfTextId = endId
        padId = vocabulary["<pad>"] ?? 0
        self.vocabulary = vocabulary
        self.ranks = ranks
        vocabularySize = Int((vocabulary.values.max() ?? 0) + 1)
    }

    /// The ids of `text` without start/end tokens and without truncation.
    public func encode(_ text: String) -> [Int32] {
        var ids: [Int32] = []
        for segment in splitSpecialTokens(text) {
            switch segment {
            case .special(let id): ids.append(id)
            case .text(let s):
                for piece in Self.preTokenize(Self.normalize(s)) { ids += bpeIds(piece) }
            }
        }
        return ids
    }

    /// `[start] + first L − 2 ids + [end]`, padded with 0 to L = `contextLength` ids.
    public func tokenize(_ text: String) -> [Int32] {
        let ids = [startOfTextId] + encode(text).prefix(contextLength - 2) + [endOfTextId]
        return ids + Array(repeating: padId, count: contextLength - ids.count)
    }

    /// Row-major (texts.count, contextLength) ids.
    public func tokenize(_ texts: [String]) -> [Int32] { texts.flatMap { tokenize($0) } }

    enum Segment: Equatable { case text(String), special(Int32) }

    /// The text cut at every special token (leftmost match, longest first at a position).
    func splitSpecialTokens(_ text: String) -> [Segment] {
        let s = Array(text.unicodeScalars)
        let specials = specialTokens.map { (Array($0.0.unicodeScalars), $0.1) }
        var segments: [Segment] = []
        var start = 0, i = 0
        outer: while i < s.count {
            for (literal, id) in specials where literal.first == s[i] && i + literal.count <= s.count
                && Array(s[i..<(i + literal.count)]) == literal {
                if start < i { segments.append(.text(String(String.UnicodeScalarView(s[start..<i])))) }
                segments.append(.special(id))
                i += literal.count
                start = i
                continue outer
            }
            i += 1
        }
        if start < s.count { segments.append(.text(String(String.UnicodeScalarView(s[start...])))) }
        return segments
    }

    /// NFD, then combining marks removed, then each code point lowercased (no context).
    static func normalize(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for scalar in text.decomposedStringWithCanonicalMapping.unicodeScalars {
            switch scalar.properties.generalCategory {
            case .nonspacingMark, .spacingMark, .enclosingMark: continue
            default: out.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return String(out)
    }

    /// The ByteLevel pre-tokeniser's pieces (with the prefix space), before the byte mapping.
    static func preTokenize(_ text: String) -> [String] {
        var s = Array(text.unicodeScalars)
        if s.first != " " { s.insert(" ", at: 0) }
        func isLetter(_ c: Unicode.Scalar) -> Bool {
            switch c.properties.generalCategory {
            case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
            default: return false
            }
        }
        func isNumber(_ c: Unicode.Scalar) -> Bool {
            switch c.properties.generalCategory {
            case .decimalNumber, .letterNumber, .otherNumber: return true
            default: return false
            }
        }
        func isSpace(_ c: Unicode.Scalar) -> Bool { c.properties.isWhitespace }
        func isOther(_ c: Unicode.Scalar) -> Bool { !isSpace(c) && !isLetter(c) && !isNumber(c) }
        var pieces: [String] = []
        var i = 0
        func take(_ j: Int) { pieces.append(String(String.UnicodeScalarView(s[i..<j]))); i = j }
        func run(from j: Int, while test: (Unicode.Scalar) -> Bool) -> Int {
            var k = j
            while k < s.count, test(s[k]) { k += 1 }
            return k
        }
        while i < s.count {
            let c = s[i]
            if c == "'", i + 1 < s.count {   // 's|'t|'re|'ve|'m|'ll|'d
                let rest = String(String.UnicodeScalarView(s[(i + 1)..<min(i + 3, s.count)]))
                if ["re", "ve", "ll"].contains(rest) { take(i + 3); continue }
                if let n = rest.unicodeScalars.first, "stmd".unicodeScalars.contains(n) { take(i + 2); continue }
            }
            let body = c == " " && i + 1 < s.count ? i + 1 : i     // the optional leading space
            if body < s.count, isLetter(s[body]) { take(run(from: body, while: isLetter)); continue }
            if body < s.count, isNumber(s[body]) { take(run(from: body, while: isNumber)); continue }
            if body < s.count, isOther(s[body]) { take(run(from: body, while: isOther)); continue }
            // Whitespace: \s+(?!\S) keeps the last space for the next piece when one follows, else \s+.
            let end = run(from: i, while: isSpace)
            take(end < s.count && end - i > 1 ? end - 1 : end)
        }
        return pieces
    }

    /// The ids of one pre-token: its bytes as GPT-2's code points, merged by rank (cached).
    func bpeIds(_ piece: String) -> [Int32] {
        lock.lock()
        if let hit = cache[piece] { lock.unlock(); return hit }
        lock.unlock()
        var word = piece.utf8.map { String(byteToUnicode[Int($0)]) }
        while word.count > 1 {
            var best = Int.max, at = -1
            for k in 0..<(word.count - 1) {
                if let r = ranks[word[k] + " " + word[k + 1]], r < best { best = r; at = k }
            }
            guard at >= 0 else { break }
            let (first, second) = (word[at], word[at + 1])
            var merged: [String] = []
            merged.reserveCapacity(word.count)
            var k = 0
            while k < word.count {
                if k + 1 < word.count, word[k] == first, word[k + 1] == second {
                    merged.append(first + second)
                    k += 2
                } else {
                    merged.append(word[k])
                    k += 1
                }
            }
            word = merged
        }
        // Every byte is in a byte-level vocabulary; a symbol that is not is dropped.
        let ids = word.compactMap { vocabulary[$0] }
        lock.lock()
        cache[piece] = ids
        lock.unlock()
        return ids
    }
}
