// Report cleaning (method spec, decision 3) and the word-dropping text corruption used by
// the "k% of words removed" ablation. docs/datasets.md states the rules with examples.
import Kernels

public enum ReportCleaning {
    /// Cleans one report. The steps, in order:
    ///
    /// 1. Control and format characters (Unicode Cc, Cf), all whitespace, `*` and `_`
    ///    become spaces.
    /// 2. The word "redacted" (any case, as a whole word) is removed, together with a
    ///    bracket pair directly around it: `[Redacted]`, `(REDACTED)`, `<redacted>`.
    /// 3. Runs of 3 or more consecutive characters that are neither letters, digits,
    ///    spaces nor brackets `()[]{}` (`#@!`, `~~~`, `-->`, `...`) are removed; brackets
    ///    end a run, so `(+)` stays.
    /// 4. `|` is split off into a token of its own; then each whitespace-separated token
    ///    is checked for OCR garbage. Its core (the token without leading `( [ { " ' < > = ± ~ #`
    ///    and trailing `) ] } " ' . , ; : ! ? %`) is garbage when it contains a character
    ///    that is not a letter, a digit or one of the joiners `- . / , : ' ’ % + × ° & ( ) =`
    ///    (e.g. `neg@tive`, `th#s`, `a}b`), or when a digit sits between two lowercase
    ///    letters (e.g. `c0l0n`, `ti1e`). A garbage token is dropped but its trailing
    ///    sentence punctuation (`. , ; : ! ?`) is kept. Tokens without any letter or digit
    ///    (`|`, `-`, `(+)`) are punctuation and kept. Numbers, measurements and codes
    ///    (`3.5`, `1,200`, `2/12`, `10x20`, `T3N1`, `pT2a`, `HER2`, `Ki-67`, `H&E`) pass.
    /// 5. Punctuation spacing: no space before `, . ; : ! ? ) ] } %` (unless the mark is
    ///    followed by a digit, as in `size .5`); no space after `( [ {`; a space after
    ///    `, ; :` when a letter follows, and after `. ! ?` when an uppercase letter follows
    ///    a lowercase letter (`cm.Margin` → `cm. Margin`, but `e.g.` and `U.S.A.` stay).
    /// 6. Whitespace is collapsed to single spaces and trimmed.
    ///
    /// Letters are never deleted individually: in particular `i`, `I`, `1` and `|` survive
    /// (the reference code's pattern deletes them).
    public static func clean(_ text: String) -> String {
        var scalars = normaliseCharacters(text)
        removeRedacted(&scalars)
        removeSymbolRuns(&scalars)
        let tokens = tokenize(scalars).compactMap(filterToken)
        return normalisePunctuation(tokens.joined(separator: " "))
    }

    /// `text` with `round(fraction · n)` of its `n` whitespace-separated words removed,
    /// chosen uniformly without replacement by a generator seeded with
    /// `derivedSeed(seed, reportIndex)`: the same (text, fraction, seed, index) always
    /// gives the same result. Remaining words keep their order, joined by single spaces.
    public static func dropWords(_ text: String, fraction: Double, seed: UInt64, reportIndex: Int) -> String {
        precondition(fraction >= 0 && fraction <= 1, "dropWords: fraction \(fraction) outside [0, 1]")
        let words = text.split(whereSeparator: { $0.isWhitespace })
        let n = words.count
        let removeCount = Int((fraction * Double(n)).rounded())
        guard removeCount > 0 else { return words.joined(separator: " ") }
        var generator = RandomGenerator(seed: derivedSeed(seed, reportIndex))
        var order = Array(0..<n)
        for i in 0..<removeCount {   // partial Fisher–Yates: order[0..<removeCount] are removed
            let j = i + generator.nextInt(upperBound: n - i)
            order.swapAt(i, j)
        }
        var removed = [Bool](repeating: false, count: n)
        for i in 0..<removeCount { removed[order[i]] = true }
        return (0..<n).filter { !removed[$0] }.map { String(words[$0]) }.joined(separator: " ")
    }

    // MARK: - Steps

    private static let space: Unicode.Scalar = " "

    private static func isLetterOrDigit(_ c: Unicode.Scalar) -> Bool {
        c.properties.isAlphabetic || c.properties.numericType != nil
    }

    private static func isDigit(_ c: Unicode.Scalar) -> Bool { c.value >= 0x30 && c.value <= 0x39 }

    private static func isLowercase(_ c: Unicode.Scalar) -> Bool { c.properties.isLowercase }

    private static func isUppercase(_ c: Unicode.Scalar) -> Bool { c.properties.isUppercase }

    /// Step 1.
    private static func normaliseCharacters(_ text: String) -> [Unicode.Scalar] {
        text.unicodeScalars.map { c in
            switch c.properties.generalCategory {
            case .control, .format, .lineSeparator, .paragraphSeparator, .spaceSeparator: return space
            default: return (c == "*" || c == "_") ? space : c
            }
        }
    }

    /// Step 2.
    private static func removeRedacted(_ s: inout [Unicode.Scalar]) {
        let word = Array("redacted".unicodeScalars)
        let closing: [Unicode.Scalar: Unicode.Scalar] = ["[": "]", "(": ")", "<": ">", "{": "}"]
        var i = 0
        while i + word.count <= s.count {
            var match = true
            for k in 0..<word.count {
                let c = s[i + k].value
                let lower = (c >= 0x41 && c <= 0x5A) ? c + 0x20 : c
                if lower != word[k].value { match = false; break }
            }
            let end = i + word.count
            if match, i == 0 || !isLetterOrDigit(s[i - 1]), end == s.count || !isLetterOrDigit(s[end]) {
                var lower = i, upper = end
                if i > 0, end < s.count, let close = closing[s[i - 1]], s[end] == close {
                    lower -= 1
                    upper += 1
                }
                s.replaceSubrange(lower..<upper, with: [space])
                i = lower + 1
            } else {
                i += 1
            }
        }
    }

    /// Step 3.
    private static let brackets = Set("()[]{}".unicodeScalars)

    private static func removeSymbolRuns(_ s: inout [Unicode.Scalar]) {
        func isRunSymbol(_ c: Unicode.Scalar) -> Bool { c != space && !isLetterOrDigit(c) && !brackets.contains(c) }
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(s.count)
        var i = 0
        while i < s.count {
            if isRunSymbol(s[i]) {
                var j = i
                while j < s.count && isRunSymbol(s[j]) { j += 1 }
                if j - i >= 3 { out.append(space) } else { out.append(contentsOf: s[i..<j]) }
                i = j
            } else {
                out.append(s[i])
                i += 1
            }
        }
        s = out
    }

    /// Step 4, first half: whitespace tokens, with `|` split off.
    private static func tokenize(_ s: [Unicode.Scalar]) -> [[Unicode.Scalar]] {
        var tokens: [[Unicode.Scalar]] = []
        var current: [Unicode.Scalar] = []
        func flush() { if !current.isEmpty { tokens.append(current); current = [] } }
        for c in s {
            if c == space {
                flush()
            } else if c == "|" {
                flush()
                tokens.append([c])
            } else {
                current.append(c)
            }
        }
        flush()
        return tokens
    }

    private static let leading = Set("([{\"'<>=±~#“‘".unicodeScalars)
    private static let trailing = Set(")]}\"'.,;:!?%”’".unicodeScalars)
    private static let joiners = Set("-./,:'’%+×°&()=".unicodeScalars)
    private static let sentencePunctuation = Set(".,;:!?".unicodeScalars)

    /// Step 4, second half: the token as text, nil if it is dropped entirely.
    private static func filterToken(_ token: [Unicode.Scalar]) -> String? {
        var start = 0, end = token.count
        while start < end && leading.contains(token[start]) { start += 1 }
        while end > start && trailing.contains(token[end - 1]) { end -= 1 }
        let core = token[start..<end]
        var garbage = false
        // Pure punctuation (`|`, `-`, `(+)`; at most 2 symbols in a row after step 3) is kept.
        if core.contains(where: isLetterOrDigit) {
            for k in core.indices {
                let c = core[k]
                if !isLetterOrDigit(c) && !joiners.contains(c) { garbage = true; break }
                if isDigit(c), k > core.startIndex, k + 1 < core.endIndex,
                   isLowercase(core[k - 1]), isLowercase(core[k + 1]) { garbage = true; break }
            }
        }
        guard garbage else { return String(String.UnicodeScalarView(token)) }
        let kept = token[end...].filter { sentencePunctuation.contains($0) }
        return kept.isEmpty ? nil : String(String.UnicodeScalarView(kept))
    }

    private static let noSpaceBefore = Set(",.;:!?)]}%".unicodeScalars)
    private static let noSpaceAfter = Set("([{".unicodeScalars)

    /// Steps 5 and 6.
    private static func normalisePunctuation(_ text: String) -> String {
        let s = Array(text.unicodeScalars)
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(s.count + 16)
        var i = 0
        while i < s.count {
            let c = s[i]
            if c == space {
                // Skip the whole run of spaces, then decide whether one is wanted.
                var j = i
                while j < s.count && s[j] == space { j += 1 }
                let next: Unicode.Scalar? = j < s.count ? s[j] : nil
                let afterNext: Unicode.Scalar? = j + 1 < s.count ? s[j + 1] : nil
                var wanted = !out.isEmpty && next != nil
                if wanted, let previous = out.last, noSpaceAfter.contains(previous) { wanted = false }
                if wanted, let next, noSpaceBefore.contains(next), !(afterNext.map(isDigit) ?? false) { wanted = false }
                if wanted, out.last != space { out.append(space) }
                i = j
                continue
            }
            out.append(c)
            if i + 1 < s.count {
                let next = s[i + 1]
                if (c == "," || c == ";" || c == ":"), next.properties.isAlphabetic {
                    out.append(space)
                } else if (c == "." || c == "!" || c == "?"), isUppercase(next), i > 0,
                          isLowercase(s[i - 1]) || s[i - 1] == ")" {
                    out.append(space)
                }
            }
            i += 1
        }
        while out.last == space { out.removeLast() }
        return String(String.UnicodeScalarView(out))
    }
}
