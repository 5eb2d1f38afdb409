/// An enum chosen by name in a configuration file or on the command line: decoding is
/// validation, and a misspelt name fails with the valid names and the nearest one
/// suggested ("unknown value 'adan'; did you mean 'adam'? (adam, adamw, sgd)").
public protocol NamedChoice: RawRepresentable, CaseIterable, Codable, Sendable where RawValue == String {}

extension NamedChoice {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let name = try container.decode(String.self)
        guard let value = Self(rawValue: name) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: Self.unknownNameMessage(name))
        }
        self = value
    }

    /// Parses `name`, throwing `UnknownNameError` with the valid names and a suggestion.
    public init(named name: String) throws {
        guard let value = Self(rawValue: name) else { throw UnknownNameError(Self.unknownNameMessage(name)) }
        self = value
    }

    /// The valid names, in declaration order.
    public static var names: [String] { allCases.map(\.rawValue) }

    /// "unknown value 'x'; did you mean 'y'? (a, b, c)".
    public static func unknownNameMessage(_ name: String) -> String {
        let suggestion = nearestName(to: name, among: names).map { "; did you mean '\($0)'?" } ?? ""
        return "unknown value '\(name)'\(suggestion) (\(names.joined(separator: ", ")))"
    }
}

/// A name that is none of the valid ones; `description` lists them.
public struct UnknownNameError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The candidate closest to `name` by Levenshtein distance (case-insensitive), when it is
/// within about a third of the name's length (at least 2 edits); nil otherwise.
public func nearestName(to name: String, among candidates: [String]) -> String? {
    let target = Array(name.lowercased())
    var best: (name: String, distance: Int)?
    for candidate in candidates {
        let d = editDistance(target, Array(candidate.lowercased()))
        if d < (best?.distance ?? .max) { best = (candidate, d) }
    }
    guard let best, best.distance <= max(2, target.count / 3) else { return nil }
    return best.name
}

/// Levenshtein distance (insertions, deletions, substitutions of one character each).
func editDistance(_ a: [Character], _ b: [Character]) -> Int {
    if a.isEmpty { return b.count }
    var previous = Array(0...b.count), current = previous
    for i in 1...a.count {
        current[0] = i
        for j in stride(from: 1, through: b.count, by: 1) {
            current[j] = Swift.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}
