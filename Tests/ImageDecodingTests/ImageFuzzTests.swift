import Formats
@testable import ImageDecoding
import TestSupport
import XCTest

/// SplitMix64: a small seeded generator, so every run mutates the same way.
struct FuzzRandom {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
}

/// Mutated fixtures (bit flips, truncations, overwritten and inserted random bytes, header
/// damage): every decode must either succeed with a consistent image or throw an
/// `ImportError` that names the file — never crash, hang or exit the process (libjpeg's
/// default error handler would exit; libpng's and libtiff's would print).
final class ImageFuzzTests: XCTestCase {
    static let mutationsPerFile = 200

    func testMutatedFixturesDecodeOrFailCleanly() throws {
        let fixtures = try ImageFixtures()
        var random = FuzzRandom(state: 20_240_601)
        var decoded = 0, refused = 0, failures: [String] = []
        var kinds: [ImportError.Kind: Int] = [:]
        for name in fixtures.imageFiles {
            let original = readBytes(fixtures.path(name))
            for index in 0..<Self.mutationsPerFile {
                var bytes = original
                let mutation: String
                switch index % 5 {
                case 0:
                    let flips = 1 + random.below(8)
                    for _ in 0..<flips { bytes[random.below(bytes.count)] ^= UInt8(1 << random.below(8)) }
                    mutation = "\(flips) bit flips"
                case 1:
                    bytes = Array(bytes.prefix(random.below(bytes.count)))
                    mutation = "cut to \(bytes.count) bytes"
                case 2:
                    let start = random.below(bytes.count), count = 1 + random.below(16)
                    for i in start..<min(bytes.count, start + count) { bytes[i] = UInt8(truncatingIfNeeded: random.next()) }
                    mutation = "\(count) random bytes at \(start)"
                case 3:
                    let at = random.below(bytes.count), count = 1 + random.below(32)
                    bytes.insert(contentsOf: (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }, at: at)
                    mutation = "\(count) bytes inserted at \(at)"
                default:
                    // Headers hold the sizes, offsets and counts the decoders trust most.
                    let at = 2 + random.below(min(bytes.count, 200) - 2)
                    bytes[at] = [0x00, 0xFF, 0x7F, 0x80, UInt8(truncatingIfNeeded: random.next())][random.below(5)]
                    mutation = "byte \(at) set to \(bytes[at])"
                }
                let path = "fuzz/\(name)"
                do {
                    let image = try bytes.withUnsafeBytes { try ImageDecoder.decode($0, path: path) }
                    if image.width <= 0 || image.height <= 0 || image.pixels.count != image.width * image.height * 3 {
                        failures.append("\(name), \(mutation): an inconsistent \(image.width)×\(image.height) image")
                    }
                    decoded += 1
                } catch let error as ImportError {
                    if !error.description.hasPrefix(path + ": ") || error.reason.isEmpty {
                        failures.append("\(name), \(mutation): '\(error)' does not name the file and a reason")
                    }
                    kinds[error.kind, default: 0] += 1
                    refused += 1
                } catch {
                    failures.append("\(name), \(mutation): not an ImportError: \(error)")
                }
            }
        }
        let total = fixtures.imageFiles.count * Self.mutationsPerFile
        XCTAssertEqual(decoded + refused + failures.filter { $0.contains("not an ImportError") }.count, total)
        XCTAssertGreaterThan(refused, total / 4, "most mutations should be refused")
        XCTAssertGreaterThan(decoded, 0, "bit flips in pixel data should still decode")
        XCTAssertEqual(failures, [])
        print("image fuzz: \(total) cases, \(decoded) decoded, \(refused) refused (\(kinds.map { "\($0.key) \($0.value)" }.sorted().joined(separator: ", "))), \(failures.count) failed")
    }
}
