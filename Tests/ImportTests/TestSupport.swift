import Datasets
import Formats
import Foundation
import Import
import Kernels
import Model
import XCTest

/// Paths into Tests/ImportTests/Fixtures (made by reference/make_import_fixtures.py).
enum ImportFixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    static func path(_ relative: String) throws -> String {
        let p = root.appendingPathComponent(relative).path
        guard FileManager.default.fileExists(atPath: p) else {
            throw XCTSkip("fixture \(relative) not generated (python reference/make_import_fixtures.py)")
        }
        return p
    }

    static func safetensors(_ relative: String) throws -> SafeTensorsFile {
        try SafeTensorsFile(path: try path(relative))
    }

    /// The corpus lines (the file ends with a newline).
    static func corpus() throws -> [String] {
        let text = try String(contentsOfFile: try path("tokenizer/corpus.txt"), encoding: .utf8)
        return Array(text.components(separatedBy: "\n").dropLast())
    }

    /// The texts a fixture's models embedded (its `texts` metadata, a JSON list).
    static func texts(_ file: SafeTensorsFile) throws -> [String] {
        let json = try XCTUnwrap(file.metadata["texts"])
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String])
    }
}

/// Largest |a − b| / max(|b|∞, tiny) over two equally long arrays: the error relative to the
/// reference's scale.
func relativeError(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "relativeError: \(a.count) vs \(b.count) values")
    var worst: Float = 0, scale: Float = 1e-12
    for (x, y) in zip(a, b) {
        worst = max(worst, abs(x - y))
        scale = max(scale, abs(y))
    }
    return worst / scale
}

func maxAbsoluteError(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "maxAbsoluteError: \(a.count) vs \(b.count) values")
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}
