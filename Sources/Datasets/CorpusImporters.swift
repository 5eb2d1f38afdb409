// Report-corpus importers: plain text, JSONL and CSV into the JSONL corpus format
// (ReportCorpus). The CSV reader follows RFC 4180 (docs/importing.md).
import Formats
import Foundation

/// A CSV file parsed into records, RFC 4180 with the usual extensions:
/// - fields are separated by `delimiter` (default ","), records by LF or CRLF (a lone CR
///   also ends a record);
/// - a field that starts with `"` is quoted: it may hold delimiters, line breaks and `""`
///   for one quote; text after its closing quote (other than the delimiter or the end of
///   the record) is an error;
/// - a quote inside an unquoted field is kept literally;
/// - a UTF-8 byte-order mark at the start is skipped; the file must be UTF-8;
/// - empty lines (outside quotes) are skipped; every record must have as many fields as
///   the header.
public struct CSVTable: Sendable {
    public let path: String
    public let header: [String]
    /// Records with the 1-based line each starts on.
    public let records: [(line: Int, fields: [String])]

    public init(path: String, delimiter: UInt8 = UInt8(ascii: ",")) throws {
        let file = try openForImport(path)
        try self.init(bytes: file.bytes, path: path, delimiter: delimiter)
    }

    public init(bytes: UnsafeRawBufferPointer, path: String, delimiter: UInt8 = UInt8(ascii: ",")) throws {
        self.path = path
        func fail(_ line: Int, _ reason: String) -> ImportError {
            ImportError(path: path, line: line, kind: .invalidInput, reason: reason)
        }
        let quote = UInt8(ascii: "\""), cr = UInt8(ascii: "\r"), lf = UInt8(ascii: "\n")
        var i = 0
        let n = bytes.count
        if n >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF { i = 3 }
        var line = 1
        var rows: [(Int, [String])] = []
        var fields: [String] = []
        var field: [UInt8] = []
        var recordLine = 1
        var fieldStarted = false   // the record has at least one character or delimiter
        var atFieldStart = true    // nothing of the current field read yet

        func finishField() throws {
            guard let text = String(validating: field, as: UTF8.self) else {
                throw fail(line, "the field is not valid UTF-8; re-encode the file as UTF-8")
            }
            fields.append(text)
            field.removeAll(keepingCapacity: true)
        }
        func finishRecord() throws {
            try finishField()
            if !(fields.count == 1 && fields[0].isEmpty && !fieldStarted) { rows.append((recordLine, fields)) }
            fields.removeAll()
            fieldStarted = false
        }

        while i < n {
            let byte = bytes[i]
            if atFieldStart && byte == quote {
                // Quoted field.
                let startLine = line
                fieldStarted = true
                i += 1
                var closed = false
                while i < n {
                    let b = bytes[i]
                    if b == quote {
                        if i + 1 < n && bytes[i + 1] == quote { field.append(quote); i += 2; continue }
                        closed = true
                        i += 1
                        break
                    }
                    if b == lf { line += 1 }
                    else if b == cr && !(i + 1 < n && bytes[i + 1] == lf) { line += 1 }
                    field.append(b)
                    i += 1
                }
                guard closed else {
                    throw fail(startLine, "a quoted field starting on this line is never closed; check for an unbalanced \" (write a literal quote as \"\")")
                }
                // After the closing quote: a delimiter, a record end, or the end of the file.
                if i < n && bytes[i] != delimiter && bytes[i] != lf && bytes[i] != cr {
                    throw fail(line, "unexpected character '\(Character(Unicode.Scalar(bytes[i])))' after a closing quote; quote the whole field and double inner quotes")
                }
                atFieldStart = false
                continue
            }
            if byte == delimiter {
                fieldStarted = true
                try finishField()
                atFieldStart = true
                i += 1
            } else if byte == lf || byte == cr {
                try finishRecord()
                i += (byte == cr && i + 1 < n && bytes[i + 1] == lf) ? 2 : 1
                line += 1
                recordLine = line
                atFieldStart = true
            } else {
                fieldStarted = true
                atFieldStart = false
                field.append(byte)
                i += 1
            }
        }
        if fieldStarted || !field.isEmpty || !fields.isEmpty { try finishRecord() }

        guard let first = rows.first else {
            throw fail(1, "the file is empty; expected a header row naming the columns")
        }
        header = first.1.map { $0.trimmingCharacters(in: .whitespaces) }
        var seen: [String: Int] = [:]
        for (index, name) in header.enumerated() {
            if let previous = seen[name], !name.isEmpty {
                throw fail(first.0, "column '\(name)' appears twice in the header (columns \(previous + 1) and \(index + 1))")
            }
            seen[name] = index
        }
        for (recordLine, record) in rows.dropFirst() where record.count != header.count {
            throw fail(recordLine, "the record has \(record.count) fields but the header has \(header.count); quote fields that contain '\(Character(Unicode.Scalar(delimiter)))' or line breaks")
        }
        records = Array(rows.dropFirst()).map { (line: $0.0, fields: $0.1) }
    }

    /// Index of column `name`, or an error listing the columns.
    public func column(_ name: String) throws -> Int {
        guard let index = header.firstIndex(of: name) else {
            throw ImportError(path: path, line: 1, kind: .invalidInput,
                              reason: "no column '\(name)'; the header has \(header.map { "'\($0)'" }.joined(separator: ", "))")
        }
        return index
    }
}

/// Converts report files into the JSONL corpus format read by `ReportCorpus`.
public enum ReportImporter {
    /// Which columns of a CSV file hold what. Nil picks the default: text "text" (or the
    /// only column), id "id" if present (else "row-<line>"), label "label" and tissue
    /// "tissue" if present.
    public struct CSVColumns: Sendable {
        public var text: String?
        public var id: String?
        public var label: String?
        public var tissue: String?
        public init(text: String? = nil, id: String? = nil, label: String? = nil, tissue: String? = nil) {
            (self.text, self.id, self.label, self.tissue) = (text, id, label, tissue)
        }
    }

    /// Reads `input` (.txt: one report per line; .jsonl/.ndjson: the corpus format; .csv /
    /// .tsv: a table with a header row) into a corpus.
    public static func read(input: String, columns: CSVColumns = CSVColumns()) throws -> ReportCorpus {
        let lower = input.lowercased()
        if lower.hasSuffix(".csv") || lower.hasSuffix(".tsv") {
            return try readCSV(input, delimiter: lower.hasSuffix(".tsv") ? UInt8(ascii: "\t") : UInt8(ascii: ","), columns: columns)
        }
        guard ReportCorpusFormat.fromExtension(input) != nil else {
            throw ImportError(path: input, kind: .invalidInput,
                              reason: "unknown report file type; use .txt (one report per line), .jsonl or .csv")
        }
        if columns.text != nil || columns.id != nil || columns.label != nil || columns.tissue != nil {
            throw ImportError(path: input, kind: .invalidInput,
                              reason: "column options apply to .csv/.tsv input only")
        }
        return try ReportCorpus(path: input)
    }

    /// Reads a CSV/TSV report table.
    public static func readCSV(_ path: String, delimiter: UInt8 = UInt8(ascii: ","),
                               columns: CSVColumns = CSVColumns()) throws -> ReportCorpus {
        let table = try CSVTable(path: path, delimiter: delimiter)
        func fail(_ line: Int, _ reason: String) -> ImportError {
            ImportError(path: path, line: line, kind: .invalidInput, reason: reason)
        }
        func optional(_ requested: String?, _ fallback: String) throws -> Int? {
            if let requested { return try table.column(requested) }
            return table.header.firstIndex(of: fallback)
        }
        let textColumn: Int
        if let name = columns.text {
            textColumn = try table.column(name)
        } else if let index = table.header.firstIndex(of: "text") {
            textColumn = index
        } else if table.header.count == 1 {
            textColumn = 0
        } else {
            throw fail(1, "no 'text' column; pass --text-column (the header has \(table.header.map { "'\($0)'" }.joined(separator: ", ")))")
        }
        let idColumn = try optional(columns.id, "id")
        let labelColumn = try optional(columns.label, "label")
        let tissueColumn = try optional(columns.tissue, "tissue")

        var ids: [String] = [], texts: [String] = [], tissues: [String?] = [], labels: [Int?] = [], labelNames: [String?] = []
        var seen: [String: Int] = [:]
        for (line, fields) in table.records {
            let text = fields[textColumn]
            guard !text.allSatisfy(\.isWhitespace) else {
                throw fail(line, "the report text (column '\(table.header[textColumn])') is empty")
            }
            let id = idColumn.map { fields[$0].trimmingCharacters(in: .whitespaces) } ?? "row-\(line)"
            guard !id.isEmpty else { throw fail(line, "the id (column '\(table.header[idColumn!])') is empty") }
            if let first = seen[id] { throw fail(line, "duplicate id \"\(id)\" (first on line \(first))") }
            seen[id] = line
            ids.append(id)
            texts.append(text)
            let tissue = tissueColumn.map { fields[$0].trimmingCharacters(in: .whitespaces) }
            tissues.append(tissue?.isEmpty == false ? tissue : nil)
            let label = labelColumn.map { fields[$0].trimmingCharacters(in: .whitespaces) } ?? ""
            if label.isEmpty {
                labels.append(nil); labelNames.append(nil)
            } else if let index = Int(label) {
                guard index >= 0 else { throw fail(line, "label \(index) is negative") }
                labels.append(index); labelNames.append(label)
            } else {
                labels.append(nil); labelNames.append(label)
            }
        }
        guard !texts.isEmpty else { throw fail(1, "the table has a header but no reports") }
        return ReportCorpus(ids: ids, texts: texts, tissues: tissues, labels: labels, labelNames: labelNames)
    }

    /// Reads `input` and writes it as JSONL to `output`; returns the corpus.
    @discardableResult
    public static func convert(input: String, output: String, columns: CSVColumns = CSVColumns()) throws -> ReportCorpus {
        let corpus = try read(input: input, columns: columns)
        guard corpus.count > 0 else {
            throw ImportError(path: input, kind: .invalidInput, reason: "holds no reports; a corpus needs at least one")
        }
        try corpus.writeJSONL(to: output)
        return corpus
    }
}
