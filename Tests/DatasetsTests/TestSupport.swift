@testable import Formats
import Foundation
import XCTest
@testable import Datasets

/// A fresh empty directory under the system temporary directory, removed by the caller.
func makeTemporaryDirectory(_ name: String = #function) -> String {
    let base = NSTemporaryDirectory() + "clipit-datasets-\(getpid())-\(name.filter { $0.isLetter || $0.isNumber })-\(UInt32.random(in: 0...UInt32.max))"
    try! FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
    return base
}

/// Asserts that `body` throws a `DatasetError` of `kind` whose text contains every one of `fragments`.
func assertDatasetError(_ kind: DatasetError.Kind, _ fragments: [String] = [],
                        file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
    do {
        try body()
        XCTFail("expected a DatasetError of kind \(kind), nothing was thrown", file: file, line: line)
    } catch let error as DatasetError {
        XCTAssertEqual(error.kind, kind, "\(error)", file: file, line: line)
        for fragment in fragments {
            XCTAssertTrue(error.description.contains(fragment), "'\(error)' lacks '\(fragment)'", file: file, line: line)
        }
    } catch {
        XCTFail("expected a DatasetError, got \(error)", file: file, line: line)
    }
}

func readBytes(_ path: String) -> [UInt8] { [UInt8](FileManager.default.contents(atPath: path)!) }

func writeBytes(_ path: String, _ bytes: [UInt8]) {
    XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
}
