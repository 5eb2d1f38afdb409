import Foundation
import Yams

// One configuration system for every run: YAML files with snake_case keys laid over a
// typed base (a preset or a checkpoint's configuration), `--set key.path=value` overrides,
// and decoding into a Codable struct as validation (unknown keys are errors; enums decode by
// name with the nearest valid name suggested). Stage 2 training reads the top level of a
// file, retriever pretraining its `pretrain:` section.

/// A configuration that cannot be read; `description` names the key and what is wrong.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The keys a user gave (a config file's mapping and the overrides), before they are laid
/// over the base: what chooses the base (e.g. `model.preset`).
public struct UserKeys {
    let node: Node

    /// The scalar at `path` (snake_case keys), if the user gave one.
    public func string(at path: [String]) -> String? {
        var current: Node? = node
        for key in path { current = current?[key] }
        return current?.string
    }
}

/// Resolves and writes configurations (see the file comment).
public enum ConfigurationResolver {
    /// The effective configuration of type `T`.
    ///
    /// 1. `yaml` (a config file's text) is read; with `section`, only that top-level key's
    ///    mapping is used; otherwise the top-level keys in `otherSections` are skipped.
    /// 2. Each override `key.path=value` is set in it (the value is parsed as a YAML scalar:
    ///    `0.5`, `true`, `cosine`); with `section`, override paths start with the section.
    /// 3. The result is laid over `base(user keys)`: keys not given keep the base's values.
    /// 4. Every key given must exist in `T`: a misspelt key is an error.
    /// `keysDocument` is where the valid keys are listed (named in unknown-key errors).
    public static func resolve<T: Codable>(yaml: String?, overrides: [String], section: String? = nil,
                                           otherSections: Set<String> = [], keysDocument: String,
                                           base: (UserKeys) throws -> T) throws -> T {
        let prefix = section.map { $0 + "." } ?? ""
        var user = Node([(Node, Node)]())
        if let yaml, !yaml.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            guard let node = try compose(yaml: yaml) else { throw ConfigurationError("config: the YAML document is empty") }
            guard case .mapping(let mapping) = node else {
                throw ConfigurationError("config: the top level must be a mapping of keys")
            }
            if let section {
                if let inner = node[section] {
                    guard case .mapping = inner else {
                        throw ConfigurationError("config: '\(section)' must be a mapping of keys")
                    }
                    user = inner
                }
            } else {
                user = Node(mapping.filter { !otherSections.contains($0.key.string ?? "") }.map { ($0.key, $0.value) })
            }
        }
        for override in overrides {
            guard let equals = override.firstIndex(of: "="), equals != override.startIndex else {
                throw ConfigurationError("--set '\(override)': expected key.path=value, e.g. \(prefix)lr=0.0005")
            }
            var key = String(override[..<equals])
            if let section {
                guard key.hasPrefix(prefix) else {
                    throw ConfigurationError("--set '\(override)': \(section) keys are written \(prefix)key, e.g. \(prefix)lr=0.0005")
                }
                key.removeFirst(prefix.count)
            }
            let path = key.split(separator: ".").map(String.init)
            let text = String(override[override.index(after: equals)...])
            let value = (try? compose(yaml: text)).flatMap { $0 } ?? Node(text)
            if case .mapping = value {
                throw ConfigurationError("--set '\(override)': the value must be a single value")
            }
            user = settingPath(user, path[...], to: value)
        }
        let baseValue = try base(UserKeys(node: user))
        let merged = merging(try snakeNode(of: baseValue), user)
        let config: T
        do {
            config = try YAMLDecoder().decode(T.self, from: try serialize(node: keysMapped(merged, camelCase)))
        } catch let error as DecodingError {
            throw ConfigurationError("config: " + describe(error, prefix: prefix))
        }
        let known = leafPaths(try snakeNode(of: config), prefix: "")
        for path in leafPaths(user, prefix: "") where !known.contains(path) {
            throw ConfigurationError("config: unknown key '\(prefix)\(path)' (\(keysDocument) lists the keys)")
        }
        return config
    }

    /// The text of the configuration file at `path`.
    public static func readFile(_ path: String) throws -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigurationError("cannot read the config file '\(path)' (missing, unreadable or not UTF-8)")
        }
        return text
    }

    /// `value` as YAML with snake_case keys and Floats in their shortest form (what a run
    /// folder's `config.yaml` holds).
    public static func yaml<T: Encodable>(of value: T) throws -> String {
        try serialize(node: try snakeNode(of: value))
    }

    static func snakeNode<T: Encodable>(of value: T) throws -> Node {
        guard let node = try compose(yaml: try YAMLEncoder().encode(value)) else {
            throw ConfigurationError("config: could not encode the configuration")
        }
        return shortestFloats(keysMapped(node, snakeCase))
    }
}

/// Rewrites plain decimal scalars (`1.00000004749745e-3`, the Double image of a Float)
/// in the shortest form that reads back to the same Float (`0.001`), so that saved
/// configurations stay readable. Every fractional value of the configuration is a Float.
private func shortestFloats(_ node: Node) -> Node {
    switch node {
    case .mapping(let mapping):
        return Node(mapping.map { ($0.key, shortestFloats($0.value)) })
    case .sequence(let sequence):
        return Node(sequence.map(shortestFloats))
    case .scalar(let scalar):
        let text = scalar.string
        guard scalar.style == .plain || scalar.style == .any, text.contains(where: { $0 == "." || $0 == "e" }),
              let value = Double(text), value.isFinite else { return node }
        return Node(String(describing: Float(value)))
    }
}

// MARK: - YAML node helpers

/// `weightDecay` → `weight_decay`.
func snakeCase(_ key: String) -> String {
    var out = ""
    for c in key {
        if c.isUppercase { out += "_" + c.lowercased() } else { out.append(c) }
    }
    return out
}

/// `weight_decay` → `weightDecay`.
func camelCase(_ key: String) -> String {
    let parts = key.split(separator: "_", omittingEmptySubsequences: false)
    guard let first = parts.first else { return key }
    return String(first) + parts.dropFirst().map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
}

private func keysMapped(_ node: Node, _ transform: (String) -> String) -> Node {
    switch node {
    case .mapping(let mapping):
        return Node(mapping.map { (Node(transform($0.key.string ?? "")), keysMapped($0.value, transform)) })
    case .sequence(let sequence):
        return Node(sequence.map { keysMapped($0, transform) })
    case .scalar:
        return node
    }
}

/// `over` laid onto `base`: mappings merge key by key, anything else replaces.
private func merging(_ base: Node, _ over: Node) -> Node {
    guard case .mapping(let b) = base, case .mapping(let o) = over else { return over }
    var pairs: [(Node, Node)] = b.map { pair in
        if let replacement = o[pair.key] { return (pair.key, merging(pair.value, replacement)) }
        return (pair.key, pair.value)
    }
    for pair in o where b[pair.key] == nil { pairs.append((pair.key, pair.value)) }
    return Node(pairs)
}

private func settingPath(_ node: Node, _ path: ArraySlice<String>, to value: Node) -> Node {
    guard let key = path.first else { return value }
    var pairs: [(Node, Node)] = []
    if case .mapping(let mapping) = node { pairs = mapping.map { ($0.key, $0.value) } }
    if let i = pairs.firstIndex(where: { $0.0.string == key }) {
        pairs[i].1 = settingPath(pairs[i].1, path.dropFirst(), to: value)
    } else {
        pairs.append((Node(key), settingPath(Node([(Node, Node)]()), path.dropFirst(), to: value)))
    }
    return Node(pairs)
}

/// Dotted paths of the non-mapping values (null values are skipped).
private func leafPaths(_ node: Node, prefix: String) -> Set<String> {
    switch node {
    case .mapping(let mapping):
        var paths = Set<String>()
        for pair in mapping {
            let key = prefix.isEmpty ? (pair.key.string ?? "") : prefix + "." + (pair.key.string ?? "")
            paths.formUnion(leafPaths(pair.value, prefix: key))
        }
        return paths
    default:
        return node.null != nil ? [] : [prefix]
    }
}

private func describe(_ error: DecodingError, prefix: String) -> String {
    func path(_ context: DecodingError.Context) -> String {
        prefix + context.codingPath.map { snakeCase($0.stringValue) }.joined(separator: ".")
    }
    switch error {
    case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c):
        return "'\(path(c))': \(c.debugDescription)"
    case .keyNotFound(let key, let c):
        return "missing key '\(path(c)).\(snakeCase(key.stringValue))'"
    @unknown default:
        return String(describing: error)
    }
}
