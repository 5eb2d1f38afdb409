// The error of the dataset and corpus importers (PNG, npz, CSV, report folders).
/// An input file could not be decoded: its bytes are not in the format it claims, are
/// corrupt or truncated, or use a feature the decoder does not implement.
///
/// `description` is one sentence that starts with the file's path (and, for line-oriented
/// inputs, the 1-based line; for archives, the member) and ends with a hint.
public struct ImportError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: String, Sendable {
        case io                // the file cannot be opened, read or listed
        case badSignature      // the file does not start the way the format requires
        case truncated         // the data ends before the structure it announces
        case checksumMismatch  // a stored CRC32 / Adler-32 differs from the computed one
        case corrupt           // inconsistent fields or undecodable compressed data
        case unsupported       // valid input using a feature this decoder does not implement
        case invalidInput      // well-formed input whose content the importer cannot use
    }

    public let path: String
    /// 1-based line (CSV records: the line the record starts on), nil otherwise.
    public let line: Int?
    /// Archive member (an npz entry), nil otherwise.
    public let member: String?
    public let kind: Kind
    public let reason: String

    public init(path: String, line: Int? = nil, member: String? = nil, kind: Kind, reason: String) {
        self.path = path
        self.line = line
        self.member = member
        self.kind = kind
        self.reason = reason
    }

    public var description: String {
        var location = path
        if let line { location += ":\(line)" }
        if let member { location += " (member '\(member)')" }
        return "\(location): \(reason)"
    }
}
