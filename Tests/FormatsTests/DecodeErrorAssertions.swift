import Formats
import TestSupport
import XCTest

/// Asserts that `body` throws an `ImportError` of `kind` whose text contains every fragment.
func assertImportError(_ kind: ImportError.Kind, _ fragments: [String], file: StaticString = #filePath,
                       line: UInt = #line, _ body: () throws -> Void) {
    XCTAssertNil(importErrorMismatch(kind, fragments, body), file: file, line: line)
}
