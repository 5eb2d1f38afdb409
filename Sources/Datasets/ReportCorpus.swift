// Report corpora: unpaired pathology reports, one per line (plain text) or one JSON
// object per line (JSONL: "id", "text", optional "tissue" and "label").
import Formats
import Foundation

/// How a corpus file is laid out.
public enum ReportCorpusFormat: String, Sendable, CaseIterable {
    /// UTF-8 text, one report per line; blank lines are skipped; ids are "line-N".
    case text
    /// One JSON object per line with string "id" and "text", optional string "tissue",
    /// optional "label" (a class name or a class index); blank lines are skipped.
    case jsonl

    /// The format implied by a path's extension (.txt, .jsonl / .ndjson), or nil.
    public static func fromExtension(_ path: String) -> ReportCorpusFormat? {
        let lower = path.lowercased()
        if lower.hasSuffix(".txt") { return .text }
        if lower.hasSuffix(".jsonl") || lower.hasSuffix(".ndjson") { return .jsonl }
        return nil
    }
}

/// A corpus of pathology reports held in memory (a few thousand reports of a few KB).
public struct ReportCorpus: Equatable, Sendable {
    /// Report identifiers, unique within the corpus.
    public var ids: [String]
    /// Report texts, as stored (clean them with `ReportCleaner` before encoding).
    public var texts: [String]
    /// Tissue / site of each report, where given.
    public var tissues: [String?]
    /// Class index of each report, where given and resolvable: a numeric label, or a class
    /// name found in the `classNames` passed to the reader. Used only by the oracle
    /// pairing strategy and for analysis, never as a training target.
    public var labels: [Int?]
    /// Each report's label exactly as written in the file (a name or a number), where given.
    public var labelNames: [String?]

    public var count: Int { texts.count }

    public init(ids: [String], texts: [String], tissues: [String?]? = nil, labels: [Int?]? = nil,
                labelNames: [String?]? = nil) {
        precondition(ids.count == texts.count, "ReportCorpus: \(ids.count) ids for \(texts.count) texts")
        self.ids = ids
        self.texts = texts
        self.tissues = tissues ?? Array(repeating: nil, count: texts.count)
        self.labels = labels ?? Array(repeating: nil, count: texts.count)
        self.labelNames = labelNames ?? self.labels.map { $0.map(String.init) }
        precondition(self.tissues.count == texts.count && self.labels.count == texts.count
                     && self.labelNames.count == texts.count, "ReportCorpus: per-report arrays differ in length")
    }

    /// Reads a corpus file.
    ///
    /// - Parameters:
    ///   - format: `nil` chooses by extension (.txt, .jsonl), else sniffs the first
    ///     non-blank line (`{` means JSONL).
    ///   - classNames: resolves string labels to indices; an unknown name is an error.
    ///     Without it, string labels are kept in `labelNames` and `labels` is nil for them.
    /// - Throws: `DatasetError` with the file and 1-based line for every malformed line
    ///   (invalid UTF-8, invalid JSON, missing or mistyped fields, duplicate ids, labels
    ///   out of range), or an `.io` error.
    public init(path: String, format: ReportCorpusFormat? = nil, classNames: [String]? = nil) throws {
        let file = try mapDatasetFile(path)
        let lines = splitLines(file.bytes)
        func fail(_ line: Int, _ reason: String) -> DatasetError {
            DatasetError(path: path, line: line, kind: .badLine, reason: reason)
        }
        var decoded: [(number: Int, text: String)] = []
        for (number, range) in lines {
            let slice = UnsafeRawBufferPointer(rebasing: file.bytes[range])
            guard let text = String(validating: slice, as: UTF8.self) else {
                throw fail(number, "the line is not valid UTF-8; re-encode the file as UTF-8")
            }
            if text.allSatisfy({ $0.isWhitespace }) { continue }
            decoded.append((number, text))
        }
        let chosen = format ?? ReportCorpusFormat.fromExtension(path)
            ?? (decoded.first.map { $0.text.drop(while: { $0.isWhitespace }).first == "{" } == true ? .jsonl : .text)

        var ids: [String] = [], texts: [String] = [], tissues: [String?] = []
        var labels: [Int?] = [], labelNames: [String?] = []
        switch chosen {
        case .text:
            for (number, text) in decoded {
                ids.append("line-\(number)")
                texts.append(text)
            }
            tissues = Array(repeating: nil, count: texts.count)
            labels = Array(repeating: nil, count: texts.count)
            labelNames = labels.map { _ in nil }
        case .jsonl:
            var seen: [String: Int] = [:]
            for (number, line) in decoded {
                let object: [String: Any]
                do {
                    guard let parsed = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                        throw fail(number, "expected a JSON object with \"id\" and \"text\"")
                    }
                    object = parsed
                } catch let error as DatasetError {
                    throw error
                } catch {
                    throw fail(number, "not valid JSON (\(error.localizedDescription)); each line must be one JSON object")
                }
                guard let id = Self.string(object["id"]) else {
                    throw fail(number, "missing or non-string \"id\"")
                }
                if let first = seen[id] {
                    throw fail(number, "duplicate id \"\(id)\" (first on line \(first))")
                }
                seen[id] = number
                guard let text = object["text"] as? String else {
                    throw fail(number, "missing or non-string \"text\"")
                }
                guard !text.allSatisfy({ $0.isWhitespace }) else {
                    throw fail(number, "report \"\(id)\" has an empty \"text\"")
                }
                var tissue: String? = nil
                if let value = object["tissue"], !(value is NSNull) {
                    guard let string = value as? String else { throw fail(number, "\"tissue\" must be a string") }
                    tissue = string
                }
                var label: Int? = nil
                var labelName: String? = nil
                if let value = object["label"], !(value is NSNull) {
                    if let name = value as? String {
                        labelName = name
                        if let classNames {
                            guard let index = classNames.firstIndex(of: name) else {
                                throw fail(number, "label \"\(name)\" is not one of the classes \(classNames)")
                            }
                            label = index
                        }
                    } else if let number = value as? NSNumber, let index = Int(exactly: number.doubleValue),
                              String(cString: number.objCType) != "c" {  // "c": a JSON true/false
                        label = index
                        labelName = String(index)
                    } else {
                        throw fail(number, "\"label\" must be a class name or an integer class index")
                    }
                    if let index = label {
                        let limit = classNames?.count ?? Int.max
                        guard index >= 0, index < limit else {
                            throw fail(number, "label \(index) is out of range 0..<\(limit)")
                        }
                    }
                }
                ids.append(id)
                texts.append(text)
                tissues.append(tissue)
                labels.append(label)
                labelNames.append(labelName)
            }
        }
        self.init(ids: ids, texts: texts, tissues: tissues, labels: labels, labelNames: labelNames)
    }

    private static func string(_ value: Any?) -> String? {
        if let string = value as? String { return string }
        return nil
    }

    /// Resolves every report's label against `classNames`, leniently: a class name becomes
    /// its index, a numeric label is kept when it is in range, anything else becomes nil
    /// and is listed in `unmatched` (as written) so the caller can say so. The strict
    /// reader (`init(path:classNames:)`) throws on the first such label instead.
    public func resolvingLabels(classNames: [String]) -> (corpus: ReportCorpus, unmatched: Set<String>) {
        var resolved = self
        var unmatched = Set<String>()
        for i in 0..<count {
            if let label = labels[i], label >= 0, label < classNames.count { continue }
            resolved.labels[i] = nil
            guard let name = labelNames[i] else { continue }
            if let index = classNames.firstIndex(of: name) {
                resolved.labels[i] = index
            } else {
                unmatched.insert(name)
            }
        }
        return (resolved, unmatched)
    }

    /// The corpus as JSONL text: one object per report with "id", "text", and "tissue" and
    /// "label" where present. Labels are written as class names when `classNames` is
    /// given, else as integers.
    public func jsonl(classNames: [String]? = nil) -> String {
        var out = ""
        for i in 0..<count {
            out += "{\"id\":" + jsonString(ids[i]) + ",\"text\":" + jsonString(texts[i])
            if let tissue = tissues[i] { out += ",\"tissue\":" + jsonString(tissue) }
            if let label = labels[i] {
                if let classNames, label >= 0, label < classNames.count {
                    out += ",\"label\":" + jsonString(classNames[label])
                } else {
                    out += ",\"label\":\(label)"
                }
            } else if let name = labelNames[i] {
                out += ",\"label\":" + jsonString(name)
            }
            out += "}\n"
        }
        return out
    }

    /// Writes the corpus as JSONL (see `jsonl(classNames:)`), atomically.
    public func writeJSONL(to path: String, classNames: [String]? = nil) throws {
        try writeFileAtomically(path, Array(jsonl(classNames: classNames).utf8))
    }
}

/// Byte ranges of the lines of `bytes` with their 1-based numbers; "\n" ends a line and a
/// trailing "\r" is dropped; a final line without "\n" counts.
func splitLines(_ bytes: UnsafeRawBufferPointer) -> [(Int, Range<Int>)] {
    var lines: [(Int, Range<Int>)] = []
    var start = 0
    var number = 1
    let n = bytes.count
    var i = 0
    while i <= n {
        if i == n || bytes[i] == 0x0A {
            var end = i
            if end > start && bytes[end - 1] == 0x0D { end -= 1 }
            if i < n || start < n { lines.append((number, start..<end)) }
            number += 1
            start = i + 1
        }
        i += 1
    }
    return lines
}
