import Formats
import Foundation

/// Read access to one JSON object of a model config, with the file path in every error.
struct JSONConfig {
    let path: String
    /// Where this object sits in the file (`vision_config`, `model_cfg.text_cfg`), for messages.
    let scope: String
    let object: [String: Any]

    init(path: String) throws {
        let bytes = try readFileBytes(path)
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
            throw ImportFileError(path: path, reason: "not a JSON object")
        }
        self.init(path: path, scope: "", object: object)
    }

    init(path: String, scope: String, object: [String: Any]) {
        self.path = path
        self.scope = scope
        self.object = object
    }

    func has(_ key: String) -> Bool { object[key] != nil && !(object[key] is NSNull) }

    private func where_(_ key: String) -> String { scope.isEmpty ? "'\(key)'" : "'\(scope).\(key)'" }

    func error(_ reason: String) -> ImportFileError { ImportFileError(path: path, reason: reason) }

    func object(_ key: String) throws -> JSONConfig? {
        guard has(key) else { return nil }
        guard let o = object[key] as? [String: Any] else { throw error("\(where_(key)) is not an object") }
        return JSONConfig(path: path, scope: scope.isEmpty ? key : scope + "." + key, object: o)
    }

    func int(_ key: String) throws -> Int? {
        guard has(key) else { return nil }
        guard let n = object[key] as? NSNumber, !isJSONBoolean(n),
              n.doubleValue == n.doubleValue.rounded() else {
            throw error("\(where_(key)) is not an integer: \(object[key]!)")
        }
        return n.intValue
    }

    func int(_ key: String, default value: Int) throws -> Int { try int(key) ?? value }

    func double(_ key: String) throws -> Double? {
        guard has(key) else { return nil }
        guard let n = object[key] as? NSNumber else { throw error("\(where_(key)) is not a number: \(object[key]!)") }
        return n.doubleValue
    }

    func double(_ key: String, default value: Double) throws -> Double { try double(key) ?? value }

    func string(_ key: String) throws -> String? {
        guard has(key) else { return nil }
        guard let s = object[key] as? String else { throw error("\(where_(key)) is not a string: \(object[key]!)") }
        return s
    }

    func bool(_ key: String, default value: Bool) throws -> Bool {
        guard has(key) else { return value }
        if let n = object[key] as? NSNumber { return n.intValue != 0 }
        if let b = object[key] as? Bool { return b }
        throw error("\(where_(key)) is not a boolean: \(object[key]!)")
    }

    func floats(_ key: String) throws -> [Float]? {
        guard has(key) else { return nil }
        guard let a = object[key] as? [Any] else { throw error("\(where_(key)) is not a list") }
        return try a.map {
            guard let n = $0 as? NSNumber else { throw error("\(where_(key)) holds a non-number") }
            return n.floatValue
        }
    }

    func ints(_ key: String) throws -> [Int]? {
        guard has(key) else { return nil }
        guard let a = object[key] as? [Any] else { throw error("\(where_(key)) is not a list") }
        return try a.map {
            guard let n = $0 as? NSNumber else { throw error("\(where_(key)) holds a non-number") }
            return n.intValue
        }
    }

    /// An image size given as an integer or a square `[h, w]`.
    func squareSize(_ key: String) throws -> Int? {
        guard has(key) else { return nil }
        if let n = try? int(key) { return n }
        if let a = try ints(key), a.count == 2, a[0] == a[1] { return a[0] }
        throw error("\(where_(key)) must be an integer or a square [h, w] size: \(object[key]!)")
    }
}
