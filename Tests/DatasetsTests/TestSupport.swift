@testable import Datasets
@testable import Formats
import Foundation
import TestSupport
import XCTest

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

/// Asserts that `body` throws an `ImportError` of `kind` whose text contains every fragment.
func assertImportError(_ kind: ImportError.Kind, _ fragments: [String], file: StaticString = #filePath,
                       line: UInt = #line, _ body: () throws -> Void) {
    XCTAssertNil(importErrorMismatch(kind, fragments, body), file: file, line: line)
}
