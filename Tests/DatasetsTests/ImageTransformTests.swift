@testable import Datasets
@testable import Formats
import Foundation
import Kernels
import TestSupport
import XCTest

final class ImageTransformTests: XCTestCase {
    /// An S×S RGB image with distinct values per pixel and channel.
    func pattern(_ size: Int) -> [UInt8] {
        (0..<(size * size * 3)).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ $0 / 3) }
    }

    func run(_ transformer: ImageTransformer, _ image: [UInt8], size: Int, _ augmentation: Augmentation) -> [Float] {
        var out = [Float](repeating: .nan, count: transformer.outputCount)
        image.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer {
                transformer.apply(src, height: size, width: size, channels: 3, augmentation: augmentation, into: $0.baseAddress!)
            }
        }
        return out
    }

    func testIdentityResampleAndNormalisation() {
        let S = 6
        let image = pattern(S)
        for interpolation in ResizeFilter.allCases {
            let t = ImageTransformer(config: .evaluation(outputSize: S, normalization: .unit, interpolation: interpolation))
            let a = t.augmentation(height: S, width: S, seed: 0, epoch: 0, index: 0)
            XCTAssertEqual(a, Augmentation(cropTop: 0, cropLeft: 0, cropHeight: 6, cropWidth: 6))
            let out = run(t, image, size: S, a)
            for c in 0..<3 { for y in 0..<S { for x in 0..<S {
                XCTAssertEqual(out[(c * S + y) * S + x], Float(image[(y * S + x) * 3 + c]) / 255, accuracy: 1e-6)
            } } }
        }
        // CLIP normalisation of mid-grey and white.
        let t = ImageTransformer(config: .evaluation(outputSize: 2, normalization: .clip))
        let white = [UInt8](repeating: 255, count: 12)
        let out = run(t, white, size: 2, t.augmentation(height: 2, width: 2, seed: 0, epoch: 0, index: 0))
        XCTAssertEqual(out[0], (1 - 0.48145466) / 0.26862954, accuracy: 1e-5)
        XCTAssertEqual(out[4], (1 - 0.4578275) / 0.26130258, accuracy: 1e-5)
        XCTAssertEqual(out[8], (1 - 0.40821073) / 0.27577711, accuracy: 1e-5)
        let imagenet = ImageTransformer(config: .evaluation(outputSize: 2, normalization: .imagenet))
        let black = run(imagenet, [UInt8](repeating: 0, count: 12), size: 2, Augmentation(cropTop: 0, cropLeft: 0, cropHeight: 2, cropWidth: 2))
        XCTAssertEqual(black[0], -0.485 / 0.229, accuracy: 1e-5)
        XCTAssertEqual(black[11], -0.406 / 0.225, accuracy: 1e-5)
    }

    func testFlipsAndRotationsAreExact() {
        let S = 5
        let image = pattern(S)
        let t = ImageTransformer(config: .evaluation(outputSize: S, normalization: .unit, interpolation: .bilinear))
        let base = Augmentation(cropTop: 0, cropLeft: 0, cropHeight: Double(S), cropWidth: Double(S))
        let identity = run(t, image, size: S, base)
        func at(_ v: [Float], _ c: Int, _ y: Int, _ x: Int) -> Float { v[(c * S + y) * S + x] }
        var h = base; h.horizontalFlip = true
        var v = base; v.verticalFlip = true
        var r = base; r.quarterTurns = 1
        var r4 = base; r4.quarterTurns = 2
        let (hOut, vOut, rOut, r2Out) = (run(t, image, size: S, h), run(t, image, size: S, v), run(t, image, size: S, r), run(t, image, size: S, r4))
        for c in 0..<3 { for y in 0..<S { for x in 0..<S {
            XCTAssertEqual(at(hOut, c, y, x), at(identity, c, y, S - 1 - x))
            XCTAssertEqual(at(vOut, c, y, x), at(identity, c, S - 1 - y, x))
            XCTAssertEqual(at(rOut, c, y, x), at(identity, c, x, S - 1 - y))   // numpy rot90 (counter-clockwise)
            XCTAssertEqual(at(r2Out, c, y, x), at(identity, c, S - 1 - y, S - 1 - x))
        } } }
    }

    func testDownscaleAveragesAndCentreCrop() {
        // 4×4 → 2×2 bilinear (antialiased) of a constant-per-2×2-block image keeps the blocks' values.
        var image = [UInt8](repeating: 0, count: 48)
        for y in 0..<4 { for x in 0..<4 { for c in 0..<3 { image[(y * 4 + x) * 3 + c] = UInt8((y / 2) * 100 + (x / 2) * 50) } } }
        let t = ImageTransformer(config: .evaluation(outputSize: 2, normalization: .unit, interpolation: .bilinear))
        let out = run(t, image, size: 4, t.augmentation(height: 4, width: 4, seed: 0, epoch: 0, index: 0))
        // Triangle filter of width 2 around each 2×2 block centre: blocks blend 1/8 with neighbours.
        XCTAssertLessThan(out[0], out[1]); XCTAssertLessThan(out[1], out[3])
        // Centre crop of a non-square image with resizeSize: 4 rows × 8 columns → resize short side 4, crop 4.
        let crop = ImageTransformer(config: .evaluation(outputSize: 4, normalization: .unit, resizeSize: 4))
        XCTAssertEqual(crop.augmentation(height: 4, width: 8, seed: 0, epoch: 0, index: 0),
                       Augmentation(cropTop: 0, cropLeft: 2, cropHeight: 4, cropWidth: 4))
    }

    func testRandomChoicesDependOnlyOnSeedEpochIndex() throws {
        let S = 16
        let config = TransformConfig.training(outputSize: 12, normalization: .clip)
        let image = pattern(S)
        let a = ImageTransformer(config: config), b = ImageTransformer(config: config)
        // Same (seed, epoch, index) → identical output, whatever else the transformer did before.
        let first = run(a, image, size: S, a.augmentation(height: S, width: S, seed: 7, epoch: 2, index: 31))
        _ = run(b, pattern(S).reversed(), size: S, b.augmentation(height: S, width: S, seed: 7, epoch: 0, index: 3))
        let second = run(b, image, size: S, b.augmentation(height: S, width: S, seed: 7, epoch: 2, index: 31))
        XCTAssertEqual(first, second)
        XCTAssertFalse(first.contains { !$0.isFinite })
        // Different epoch or index → different choices (for these values).
        let draws = (0..<20).map { a.augmentation(height: S, width: S, seed: 7, epoch: $0 % 2, index: $0 / 2) }
        XCTAssertEqual(Set(draws.map { "\($0)" }).count, 20)
        for d in draws {
            XCTAssertTrue(d.cropTop >= 0 && d.cropLeft >= 0 && d.cropTop + d.cropHeight <= Double(S) && d.cropLeft + d.cropWidth <= Double(S))
            XCTAssertTrue((0..<4).contains(d.quarterTurns))
            XCTAssertTrue(abs(d.brightness - 1) <= 0.2 && abs(d.hue) <= 0.02)
        }
        // fillBatch: a sample's slot depends on its index, not its position in the batch.
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let writer = try DatasetWriter(path: dir + "/d.cds", height: S, width: S, channels: 3, count: 3,
                                       info: DatasetInfo(classNames: ["x"], split: "t", source: ""))
        for i in 0..<3 { try writer.append(image: pattern(S).map { $0 &+ UInt8(i) }, label: 0) }
        try writer.finish()
        let file = try DatasetFile(path: dir + "/d.cds")
        let batch1 = Tensor(shape: [2, 3, 12, 12]), batch2 = Tensor(shape: [2, 3, 12, 12])
        a.fillBatch(batch1, from: file, indices: [0, 2], seed: 1, epoch: 0)
        b.fillBatch(batch2, from: file, indices: [2, 1], seed: 1, epoch: 0)
        XCTAssertEqual(Array(batch1.array[432...]), Array(batch2.array[..<432]))
    }
}

extension ImageTransformer {
    /// Fills `batch` (B, 3, S, S) with the transformed images `indices` of `dataset`; the
    /// random choices of image i depend only on (seed, epoch, i).
    func fillBatch(_ batch: Tensor, from dataset: DatasetFile, indices: [Int], seed: UInt64, epoch: Int) {
        let S = config.outputSize
        precondition(batch.shape == [indices.count, 3, S, S],
                     "ImageTransformer.fillBatch: batch \(batch.shape), expected [\(indices.count), 3, \(S), \(S)]")
        for (b, index) in indices.enumerated() {
            apply(dataset.imageBytes(at: index), height: dataset.height, width: dataset.width,
                  channels: dataset.channels, seed: seed, epoch: epoch, index: index,
                  into: batch.data + b * outputCount)
        }
    }
}
