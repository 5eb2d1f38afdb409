import Foundation

/// How raw text is cleaned before CLIP's byte-level BPE. The two upstream tokenizers differ
/// here and only here (the pre-tokenisation, byte mapping and BPE are the same):
///
/// - `openCLIP` — open_clip's `SimpleTokenizer` (clean = 'lower', as OpenAI's CLIP):
///   `ftfy.fix_text`, `html.unescape` twice, strip, collapse whitespace (`str.split`), `str.lower`.
///   Of ftfy's fixes this implements the ones that change well-formed text: HTML unescaping
///   when the text has no `<`, ANSI terminal escapes removed, C1 controls read as
///   Windows-1252, Latin ligatures (ﬁ → fi), full-width forms (ＣＤ３ → CD3, U+3000 → space),
///   curly quotes straightened, line breaks unified, control characters removed, NFC.
///   ftfy's mojibake repair (`fix_encoding`: "Ã©" → "é") is not replicated: text that is
///   mis-decoded UTF-8 tokenises differently from open_clip.
/// - `huggingFace` — transformers' `CLIPTokenizer` (the *tokenizers* backend): NFC, every run
///   of Unicode whitespace → one space, lowercase. No ftfy and no HTML unescaping: "&amp;",
///   curly quotes, ligatures and full-width letters stay as they are, so these texts get other
///   ids than with open_clip.
///
/// HTML unescaping covers numeric references and the named entities likely in reports
/// (`htmlEntities`), not all 2,231 of HTML5.
public enum TextNormalization: String, Codable, Sendable, CaseIterable {
    case openCLIP = "open_clip"
    case huggingFace = "huggingface"

    public func apply(_ text: String) -> String {
        switch self {
        case .openCLIP:
            var t = ftfyFixText(text)
            t = htmlUnescape(htmlUnescape(t))
            return pythonLower(collapseWhitespace(t, isSpace: isPythonSpace))
        case .huggingFace:
            let nfc = text.precomposedStringWithCanonicalMapping
            var scalars = String.UnicodeScalarView()
            var inSpace = false
            for s in nfc.unicodeScalars {
                if s.properties.isWhitespace {
                    if !inSpace { scalars.append(" ") }
                    inSpace = true
                } else {
                    for l in s.properties.lowercaseMapping.unicodeScalars { scalars.append(l) }
                    inSpace = false
                }
            }
            return String(scalars)
        }
    }
}

// MARK: - ftfy subset

/// `ftfy.fix_text` with its default configuration, restricted to the fixes listed on
/// `TextNormalization.openCLIP`, applied in ftfy's order.
func ftfyFixText(_ text: String) -> String {
    var t = text
    if !t.contains("<") { t = htmlUnescape(t) }
    var out = String.UnicodeScalarView()
    let scalars = Array(t.unicodeScalars)
    var i = 0
    while i < scalars.count {
        let s = scalars[i]
        // Terminal escapes: ESC [ digits/semicolons letter.
        if s == "\u{1B}", i + 1 < scalars.count, scalars[i + 1] == "[" {
            var j = i + 2
            while j < scalars.count, ("0"..."9").contains(scalars[j]) || scalars[j] == ";" { j += 1 }
            if j < scalars.count, scalars[j].properties.isAlphabetic, scalars[j].isASCII { i = j + 1; continue }
        }
        i += 1
        var replacement: [Unicode.Scalar] = [s]
        if (0x80...0x9F).contains(s.value), let w = windows1252C1[s.value] { replacement = [w] }
        replacement = replacement.flatMap { c -> [Unicode.Scalar] in
            if let lig = latinLigatures[c.value] { return Array(lig.unicodeScalars) }
            if c.value == 0x3000 { return [" "] }
            if (0xFF01...0xFFEF).contains(c.value) {
                let nfkc = String(Character(c)).precomposedStringWithCompatibilityMapping
                return Array(nfkc.unicodeScalars)
            }
            if c.value == 0x02BC || (0x2018...0x201B).contains(c.value) { return ["'"] }
            if (0x201C...0x201F).contains(c.value) { return ["\""] }
            return [c]
        }
        for c in replacement { out.append(c) }
    }
    // Line breaks: CRLF, CR, U+2028, U+2029, U+0085 → LF.
    var fixed = String.UnicodeScalarView()
    let pass = Array(out)
    var k = 0
    while k < pass.count {
        let c = pass[k]
        k += 1
        switch c.value {
        case 0x0D:
            if k < pass.count, pass[k] == "\n" { k += 1 }
            fixed.append("\n")
        case 0x2028, 0x2029, 0x85: fixed.append("\n")
        default:
            if !isFtfyControl(c) { fixed.append(c) }
        }
    }
    return String(fixed).precomposedStringWithCanonicalMapping
}

/// ftfy's `remove_control_chars` set (tab, LF, FF and CR are kept).
private func isFtfyControl(_ s: Unicode.Scalar) -> Bool {
    switch s.value {
    case 0x00...0x08, 0x0B, 0x0E...0x1F, 0x7F, 0x206A...0x206F, 0xFEFF, 0xFFF9...0xFFFC: return true
    default: return false
    }
}

/// ftfy's `fix_latin_ligatures` table.
private let latinLigatures: [UInt32: String] = [
    0x0132: "IJ", 0x0133: "ij", 0x0149: "\u{02BC}n", 0x01F1: "DZ", 0x01F2: "Dz", 0x01F3: "dz",
    0x01C4: "D\u{017D}", 0x01C5: "D\u{017E}", 0x01C6: "d\u{017E}", 0x01C7: "LJ", 0x01C8: "Lj",
    0x01C9: "lj", 0x01CA: "NJ", 0x01CB: "Nj", 0x01CC: "nj", 0xFB00: "ff", 0xFB01: "fi",
    0xFB02: "fl", 0xFB03: "ffi", 0xFB04: "ffl", 0xFB05: "\u{017F}t", 0xFB06: "st",
]

/// C1 control characters read as Windows-1252 (ftfy's `fix_c1_controls`; the five bytes
/// Windows-1252 leaves undefined stay as they are).
private let windows1252C1: [UInt32: Unicode.Scalar] = [
    0x80: "\u{20AC}", 0x82: "\u{201A}", 0x83: "\u{0192}", 0x84: "\u{201E}", 0x85: "\u{2026}",
    0x86: "\u{2020}", 0x87: "\u{2021}", 0x88: "\u{02C6}", 0x89: "\u{2030}", 0x8A: "\u{0160}",
    0x8B: "\u{2039}", 0x8C: "\u{0152}", 0x8E: "\u{017D}", 0x91: "\u{2018}", 0x92: "\u{2019}",
    0x93: "\u{201C}", 0x94: "\u{201D}", 0x95: "\u{2022}", 0x96: "\u{2013}", 0x97: "\u{2014}",
    0x98: "\u{02DC}", 0x99: "\u{2122}", 0x9A: "\u{0161}", 0x9B: "\u{203A}", 0x9C: "\u{0153}",
    0x9E: "\u{017E}", 0x9F: "\u{0178}",
]

// MARK: - Python string semantics

/// Python's `str.isspace` (what `str.split()` splits on): Unicode White_Space plus the
/// information separators U+001C…U+001F.
func isPythonSpace(_ s: Unicode.Scalar) -> Bool {
    s.properties.isWhitespace || (0x1C...0x1F).contains(s.value)
}

/// `" ".join(text.split())`: runs of whitespace become one space, none at either end.
func collapseWhitespace(_ text: String, isSpace: (Unicode.Scalar) -> Bool) -> String {
    var out = String.UnicodeScalarView()
    var pendingSpace = false
    for s in text.unicodeScalars {
        if isSpace(s) {
            pendingSpace = !out.isEmpty
        } else {
            if pendingSpace { out.append(" ") }
            pendingSpace = false
            out.append(s)
        }
    }
    return String(out)
}

/// Python's `str.lower()`: the full lowercase mapping of each code point, with the
/// context-dependent final sigma (Σ → ς at the end of a word).
func pythonLower(_ text: String) -> String {
    let scalars = Array(text.unicodeScalars)
    var out = String.UnicodeScalarView()
    for (i, s) in scalars.enumerated() {
        if s.value == 0x03A3 {
            out.append(isFinalSigma(scalars, i) ? "\u{03C2}" : "\u{03C3}")
            continue
        }
        for l in s.properties.lowercaseMapping.unicodeScalars { out.append(l) }
    }
    return String(out)
}

private func isFinalSigma(_ s: [Unicode.Scalar], _ i: Int) -> Bool {
    var j = i - 1
    while j >= 0, s[j].properties.isCaseIgnorable { j -= 1 }
    guard j >= 0, s[j].properties.isCased else { return false }
    var k = i + 1
    while k < s.count, s[k].properties.isCaseIgnorable { k += 1 }
    return k == s.count || !s[k].properties.isCased
}

// MARK: - HTML

/// Python's `html.unescape` for numeric character references (`&#233;`, `&#xE9;`, the
/// semicolon optional) and the named entities of `htmlEntities` (with the semicolon; `&amp`,
/// `&lt`, `&gt`, `&quot` and `&nbsp` also without, as HTML's legacy rules allow).
public func htmlUnescape(_ text: String) -> String {
    guard text.contains("&") else { return text }
    let s = Array(text.unicodeScalars)
    var out = String.UnicodeScalarView()
    var i = 0
    while i < s.count {
        guard s[i] == "&" else { out.append(s[i]); i += 1; continue }
        if let (replacement, length) = characterReference(s, at: i) {
            out.append(contentsOf: replacement.unicodeScalars)
            i += length
        } else {
            out.append("&")
            i += 1
        }
    }
    return String(out)
}

private func characterReference(_ s: [Unicode.Scalar], at start: Int) -> (String, Int)? {
    var i = start + 1
    guard i < s.count else { return nil }
    if s[i] == "#" {
        i += 1
        var hex = false
        if i < s.count, s[i] == "x" || s[i] == "X" { hex = true; i += 1 }
        let digitsStart = i
        var value: UInt64 = 0
        while i < s.count, let d = hexDigit(s[i]), hex || d < 10 {
            value = min(value * (hex ? 16 : 10) + UInt64(d), 0x11_0000)
            i += 1
        }
        guard i > digitsStart else { return nil }
        if i < s.count, s[i] == ";" { i += 1 }
        return (numericReference(value), i - start)
    }
    var j = i
    while j < s.count, j - i < 32, s[j].isASCII, s[j].properties.isAlphabetic || ("0"..."9").contains(s[j]) {
        j += 1
    }
    let name = String(String.UnicodeScalarView(s[i..<j]))
    if j < s.count, s[j] == ";", let value = htmlEntities[name] { return (value, j + 1 - start) }
    // Legacy entities recognised without a semicolon (longest known prefix).
    for legacy in ["nbsp", "quot", "amp", "lt", "gt"] where name.hasPrefix(legacy) {
        return (htmlEntities[legacy]!, 1 + legacy.count)
    }
    return nil
}

private func hexDigit(_ c: Unicode.Scalar) -> UInt32? {
    switch c.value {
    case 0x30...0x39: return c.value - 0x30
    case 0x41...0x46: return c.value - 0x41 + 10
    case 0x61...0x66: return c.value - 0x61 + 10
    default: return nil
    }
}

/// Python's rules for `&#N;`: C1 numbers read as Windows-1252, invalid ones → U+FFFD.
private func numericReference(_ value: UInt64) -> String {
    if let w = windows1252C1[UInt32(truncatingIfNeeded: value)], (0x80...0x9F).contains(value) {
        return String(Character(w))
    }
    if value == 0 || value > 0x10FFFF || (0xD800...0xDFFF).contains(value) { return "\u{FFFD}" }
    return String(Character(Unicode.Scalar(UInt32(value))!))
}

/// Named HTML entities handled by `htmlUnescape` (a subset of HTML5's).
public let htmlEntities: [String: String] = [
    "amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'", "nbsp": "\u{00A0}",
    "ndash": "\u{2013}", "mdash": "\u{2014}", "hellip": "\u{2026}", "lsquo": "\u{2018}",
    "rsquo": "\u{2019}", "ldquo": "\u{201C}", "rdquo": "\u{201D}", "bull": "\u{2022}",
    "middot": "\u{00B7}", "deg": "\u{00B0}", "plusmn": "\u{00B1}", "times": "\u{00D7}",
    "divide": "\u{00F7}", "micro": "\u{00B5}", "mu": "\u{03BC}", "alpha": "\u{03B1}",
    "beta": "\u{03B2}", "gamma": "\u{03B3}", "delta": "\u{03B4}", "kappa": "\u{03BA}",
    "lambda": "\u{03BB}", "le": "\u{2264}", "ge": "\u{2265}", "ne": "\u{2260}", "asymp": "\u{2248}",
    "sup1": "\u{00B9}", "sup2": "\u{00B2}", "sup3": "\u{00B3}", "frac12": "\u{00BD}",
    "frac14": "\u{00BC}", "frac34": "\u{00BE}", "percnt": "%", "copy": "\u{00A9}",
    "reg": "\u{00AE}", "trade": "\u{2122}", "sect": "\u{00A7}", "para": "\u{00B6}",
    "laquo": "\u{00AB}", "raquo": "\u{00BB}", "larr": "\u{2190}", "rarr": "\u{2192}",
    "uarr": "\u{2191}", "darr": "\u{2193}", "minus": "\u{2212}", "shy": "\u{00AD}",
    "aacute": "\u{00E1}", "eacute": "\u{00E9}", "iacute": "\u{00ED}", "oacute": "\u{00F3}",
    "uacute": "\u{00FA}", "agrave": "\u{00E0}", "egrave": "\u{00E8}", "ccedil": "\u{00E7}",
    "auml": "\u{00E4}", "euml": "\u{00EB}", "iuml": "\u{00EF}", "ouml": "\u{00F6}", "uuml": "\u{00FC}",
    "Auml": "\u{00C4}", "Ouml": "\u{00D6}", "Uuml": "\u{00DC}", "Eacute": "\u{00C9}",
    "szlig": "\u{00DF}", "oslash": "\u{00F8}", "Oslash": "\u{00D8}", "aring": "\u{00E5}",
    "Aring": "\u{00C5}", "ntilde": "\u{00F1}", "ecirc": "\u{00EA}", "acirc": "\u{00E2}",
]
