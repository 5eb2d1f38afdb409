import XCTest
@testable import Kernels

final class GEMMTests: XCTestCase {
    func testPlaceholderBuilds() { XCTAssertEqual(Tensor(shape: [2, 3]).count, 6) }
}
