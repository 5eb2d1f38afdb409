import Foundation

/// `value` as pretty-printed JSON with sorted keys: the format of every summary, settings
/// and pairing file the project writes (stable across runs, diff-friendly).
public func prettyJSON<Value: Encodable>(_ value: Value) throws -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    return try encoder.encode(value)
}

extension AtomicFileWriter {
    /// Writes `data` to `path` atomically in one call.
    public static func write(_ data: Data, to path: String) throws {
        try data.withUnsafeBytes { try write($0, to: path) }
    }

    /// Writes `value` as `prettyJSON` to `path` atomically.
    public static func writeJSON<Value: Encodable>(_ value: Value, to path: String) throws {
        try write(try prettyJSON(value), to: path)
    }
}
