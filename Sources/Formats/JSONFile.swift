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

    /// Writes `value` as `prettyJSON` to `path` atomically. A value JSON cannot hold (NaN,
    /// infinity) is a `FileIOError` naming the file and the key.
    public static func writeJSON<Value: Encodable>(_ value: Value, to path: String) throws {
        let data: Data
        do {
            data = try prettyJSON(value)
        } catch EncodingError.invalidValue(let bad, let context) {
            let key = context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
            throw FileIOError(path: path, call: "encode", code: 0,
                              reason: "cannot write '\(key)' = \(bad): JSON has no NaN or infinity (a non-finite result)")
        }
        try write(data, to: path)
    }
}
