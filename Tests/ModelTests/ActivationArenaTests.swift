import Kernels
@testable import Model
import XCTest

/// The activation arena: one allocation sized up front, every buffer named, nothing
/// allocated by a step once the arena is reserved.
final class ActivationArenaTests: XCTestCase {
    func testOneZeroFilledAllocationThatOnlyGrows() {
        let arena = ActivationArena()
        let rows = SampleRows(3)
        let a = arena.buffer("a") { $0.samples * rows.count * 5 }
        let b = arena.buffer("b") { $0.globalSamples * 2 }
        arena.reserve(samples: 4, globalSamples: 8)
        XCTAssertEqual(a.count, 60)
        XCTAssertEqual(b.count, 16)
        XCTAssertEqual(arena.buffers.map(\.name), ["a", "b"])
        XCTAssertEqual(arena.floatCount, 64 + 16, "each buffer starts at a multiple of 16 floats")
        XCTAssertEqual(b.data - a.data, 64, "the buffers share one allocation")
        XCTAssertTrue((0..<a.count).allSatisfy { a.data[$0] == 0 })
        // Smaller batches reuse the plan: same pointers, nothing allocated.
        a.data[0] = 7
        let before = a.data
        arena.reserve(samples: 2, globalSamples: 8)
        XCTAssertEqual(a.data, before)
        XCTAssertEqual(a.data[0], 7)
        // A larger batch re-plans for the largest shape seen.
        arena.reserve(samples: 6)
        XCTAssertEqual(a.count, 90)
        XCTAssertEqual(b.count, 16, "the global batch keeps its largest value")
        // A geometry change (rows per sample) re-plans at the same shape.
        arena.reserve(samples: 1, rows: rows, perSample: 4)
        XCTAssertEqual(rows.count, 4)
        XCTAssertEqual(a.count, 6 * 4 * 5)
    }

    func testATrainingStepAllocatesNoActivationsAfterReserve() {
        let config = CLIPITConfig(vision: .tiny, text: .tiny,
                                  visionTraining: TowerTraining(lora: LoRAConfig(rank: 2, alpha: 4), targets: .all),
                                  textTraining: TowerTraining(lora: LoRAConfig(rank: 2, alpha: 4), targets: .all),
                                  classes: 3)
        let model = CLIPITModel(config, seed: 3)
        model.reserveActivations(batch: 4)
        let arena = model.store.activations
        let planned = arena.floatCount
        XCTAssertGreaterThan(planned, 0)
        XCTAssertGreaterThan(arena.buffers.count, 50, "every layer's buffers are in the arena")
        XCTAssertEqual(Set(arena.buffers.map(\.name)).count, arena.buffers.count, "buffer names are unique")
        var images = [Float](repeating: 0.1, count: 4 * 3 * 16 * 16)
        for i in images.indices { images[i] = Float(i % 17) / 17 }
        let labels: [Int32] = [0, 1, 2, 0]
        let tokens = [Int32](repeating: 5, count: 4 * TextConfig.tiny.contextLength)
        let buffers = arena.buffers.map(\.count)
        for batch in [4, 3] {
            images.withUnsafeBufferPointer { i in labels.withUnsafeBufferPointer { l in tokens.withUnsafeBufferPointer { t in
                _ = model.forwardBackward(images: i.baseAddress!, labels: l.baseAddress!, tokens: t.baseAddress!,
                                          batch: batch)
            } } }
        }
        XCTAssertEqual(arena.floatCount, planned, "a step at or below the reserved batch re-plans nothing")
        XCTAssertEqual(arena.buffers.map(\.count), buffers)
    }
}
