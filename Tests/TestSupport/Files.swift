import Formats
import Foundation

// Files and decode-error checks shared by the suites that read and write files.

/// A fresh empty directory under the system temporary directory, removed by the caller.
public func makeTemporaryDirectory(_ name: String = #function) -> String {
    let base = NSTemporaryDirectory() + "clipit-tests-\(getpid())-\(name.filter { $0.isLetter || $0.isNumber })-\(UInt32.random(in: 0...UInt32.max))"
    try! FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
    return base
}

/// The bytes of the file at `path` (which must exist).
public func readBytes(_ path: String) -> [UInt8] { [UInt8](FileManager.default.contents(atPath: path)!) }

/// Writes `bytes` to `path`; traps if the file cannot be created (a broken test setup).
public func writeBytes(_ path: String, _ bytes: [UInt8]) {
    precondition(FileManager.default.createFile(atPath: path, contents: Data(bytes)), "cannot write \(path)")
}

/// nil when `body` throws an `ImportError` of `kind` whose text contains every one of
/// `fragments`; otherwise what went wrong (for `XCTAssertNil`).
public func importErrorMismatch(_ kind: ImportError.Kind, _ fragments: [String], _ body: () throws -> Void) -> String? {
    do {
        try body()
        return "expected an ImportError of kind \(kind), nothing was thrown"
    } catch let error as ImportError {
        if error.kind != kind { return "expected kind \(kind), got \(error.kind): \(error)" }
        if let missing = fragments.first(where: { !error.description.contains($0) }) { return "'\(error)' lacks '\(missing)'" }
        return nil
    } catch {
        return "expected an ImportError, got \(error)"
    }
}
