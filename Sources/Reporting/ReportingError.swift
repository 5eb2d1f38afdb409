/// A file `clipit report` or `clipit eval --html` cannot use: which file, what is wrong
/// with it, and what to do.
public struct ReportingError: Error, CustomStringConvertible, Sendable {
    /// The file or folder concerned.
    public let path: String
    /// The problem and the remedy, without the path.
    public let reason: String

    public init(path: String, _ reason: String) {
        self.path = path
        self.reason = reason
    }

    public var description: String { "\(path): \(reason)" }
}

extension ReportingError {
    /// A decoding error in a few words: which key is missing or mistyped (the key path as
    /// the Swift properties spell it), or that the text is not JSON.
    static func describe(_ error: Error) -> String {
        func path(_ keys: [CodingKey]) -> String {
            keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            return "no \(path(context.codingPath + [key]))"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            return "\(path(context.codingPath)) has the wrong type"
        case DecodingError.dataCorrupted(let context):
            return context.codingPath.isEmpty ? "not valid JSON" : "\(path(context.codingPath)) is invalid"
        default:
            return "\(error)"
        }
    }
}
