import Foundation

/// `value` as pretty-printed JSON with sorted snake_case keys: the format of every
/// summary, settings and pairing file the project writes (stable across runs,
/// diff-friendly).
public func prettyJSON<Value: Encodable>(_ value: Value) throws -> Data {
    try ProjectJSON.encoder(pretty: true).encode(value)
}

/// One key style in every JSON file: snake_case (`balanced_accuracy`), written from Swift's
/// camelCase property names; readers also accept the camelCase keys of files written
/// before. Dictionary keys (class names) are data and are never converted.
public enum ProjectJSON {
    /// An encoder writing snake_case keys, sorted; pretty-printed for whole files, compact
    /// for JSON lines.
    public static func encoder(pretty: Bool) -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys]
        return encoder
    }

    /// A decoder reading snake_case keys and, for older files, camelCase ones.
    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .custom { path in AnyKey(propertyKey(path.last!.stringValue)) }
        return decoder
    }

    /// The value of `key` (snake_case) in a parsed JSON object, or of its older camelCase key.
    public static func value(_ object: [String: Any], _ key: String) -> Any? {
        object[key] ?? object[propertyKey(key)]
    }

    /// The Swift property (camelCase) key of a JSON key: `macro_f1` → `macroF1`; a key
    /// without "_" (an older camelCase file) is kept; acronyms as the properties spell them.
    static func propertyKey(_ key: String) -> String {
        guard key.contains("_") else { return key }
        let parts = key.split(separator: "_", omittingEmptySubsequences: true)
        guard let first = parts.first else { return key }
        let camel = String(first) + parts.dropFirst().map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
        return acronyms[camel] ?? camel
    }

    /// Properties whose names hold an acronym, which `convertToSnakeCase` lowercases whole.
    static let acronyms = ["macroAuroc": "macroAUROC"]

    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ string: String) { stringValue = string }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { return nil }
    }
}

extension AtomicFileWriter {
    /// Writes `data` to `path` atomically in one call.
    public static func write(_ data: Data, to path: String) throws {
        try data.withUnsafeBytes { try write($0, to: path) }
    }

    /// Writes a parsed-JSON-style object (`[String: Any]` of strings, numbers, arrays and
    /// objects) pretty-printed with sorted keys and a final newline, atomically.
    public static func writeJSONObject(_ object: [String: Any], to path: String) throws {
        var data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys,
                                                                                .withoutEscapingSlashes])
        data.append(0x0A)
        try write(data, to: path)
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

/// Whether a value parsed by `JSONSerialization` is a JSON `true`/`false`. `value is Bool`
/// cannot tell: Foundation bridges every NSNumber, so a JSON `1` passes it too; booleans are
/// the numbers of Objective-C type `c`.
public func isJSONBoolean(_ value: Any) -> Bool {
    if let number = value as? NSNumber { return String(cString: number.objCType) == "c" }
    return value is Bool
}
