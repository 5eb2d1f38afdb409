/// A dataset or report-corpus file could not be read, validated or written.
///
/// `description` is one readable sentence that starts with the file's path (and the
/// 1-based line number for line-oriented inputs) and ends with what to do about it.
public struct DatasetError: Error, CustomStringConvertible, Equatable, Sendable {
    /// What went wrong, for tests and callers that branch on it.
    public enum Kind: String, Sendable {
        case io                 // open / stat / mmap / write / rename failed
        case badMagic           // not a .cds file
        case unsupportedVersion // a .cds version this reader does not know
        case truncated          // shorter than the header or than the sizes it announces
        case badHeader          // fixed header fields or the JSON block are inconsistent
        case sizeMismatch       // offsets, counts and the file size disagree
        case labelOutOfRange    // a label outside 0..<classCount (or not -1 in an unlabelled file)
        case unlabelled         // an unlabelled file given where labels are needed (training, evaluation)
        case checksumMismatch   // the stored CRC32 differs from the computed one
        case badLine            // a report-corpus line is malformed
        case invalidArgument    // a writer was used inconsistently
    }

    public let path: String
    /// 1-based line number for line-oriented inputs (report corpora), nil otherwise.
    public let line: Int?
    public let kind: Kind
    /// The problem, without the path.
    public let reason: String

    public init(path: String, line: Int? = nil, kind: Kind, reason: String) {
        self.path = path
        self.line = line
        self.kind = kind
        self.reason = reason
    }

    public var description: String {
        if let line { return "\(path):\(line): \(reason)" }
        return "\(path): \(reason)"
    }
}

/// Bounds checked before anything is allocated from a count read out of a file.
public enum DatasetLimits {
    /// Classes of one dataset (a label is below this).
    public static let maxClasses = 65_536
}
