
import Foundation

/// An error reading a compressed or configuration file of a model folder.
public struct ImportFileError: Error, CustomStringConvertible {
    public var path: String
    public var reason: String

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    public var description: String { "'\(path)': \(reason)" }
}

/// Reads a whole file.
public func readFileBytes(_ path: String) throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw ImportFileError(path: path, reason: "cannot read the file (missing or unreadable)")
    }
    return [UInt8](data)
}

/// Reads and decompresses a `.gz` file (RFC 1952; concatenated members are decoded one
/// after the other) with Formats' `Zlib.inflate`; failures name the file.
public func gunzipFile(_ path: String) throws -> [UInt8] {
    let compressed = try readFileBytes(path)
    do {
        return try Zlib.inflate(compressed, format: .gzip, path: path)
    } catch let error as InflateError {
        throw ImportFileError(path: path, reason: error.reason)
    }
}
