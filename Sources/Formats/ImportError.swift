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

/// CRC-32 (zlib's `crc32`, the ISO-HDLC / PNG polynomial) of `count` bytes at `pointer`,
/// continuing from `initial` (0 for a fresh checksum).
public func crc32Update(_ initial: UInt32, _ pointer: UnsafeRawPointer?, count: Int) -> UInt32 {
    Zlib.crc32(UnsafeRawBufferPointer(start: pointer, count: count), initial: initial)
}

extension ImportError {
    /// A failed system call on an importer's input (`.io`).
    public init(_ error: FileIOError) {
        self.init(path: error.path, kind: .io, reason: error.reason)
    }

    /// Undecodable compressed data in an importer's input, same kind, path and member.
    public init(_ error: InflateError) {
        let kind: Kind
        switch error.kind {
        case .io: kind = .io
        case .truncated: kind = .truncated
        case .checksumMismatch: kind = .checksumMismatch
        case .corrupt: kind = .corrupt
        }
        self.init(path: error.path, member: error.member, kind: kind, reason: error.reason)
    }
}

/// Maps an importer's input read-only; failures are `ImportError`s.
public func openForImport(_ path: String) throws -> MappedFile {
    do {
        return try MappedFile(path: path)
    } catch let error as FileIOError {
        throw ImportError(error)
    }
}


public func hex32(_ value: UInt32) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
}
