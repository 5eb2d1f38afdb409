import Foundation
@testable import Model
import Kernels
import XCTest

/// The CoCa / CONCH text tower variant (`TextConfig.classEmbedding`): a class embedding appended
/// after the ids and pooled there, with the shifted padding mask. Finite-difference gradients,
/// the mask's semantics, regions. Parity with CONCH's own code: ImportTests/CONCHImportTests.
final class ClassEmbeddingTextTests: XCTestCase {
    static func config() -> TextConfig {
        var config = TextConfig.tiny
        config.contextLength = 15      // 15 ids + the class position = 16
        config.classEmbedding = true
        config.activation = .gelu
        config.endOfTextId = 2
        return config
    }

    /// Ids (B = 3, L = 15): start 1, words, end 2, then padding 0; the middle row fills the
    /// context (the class row then attends to itself).
    static func tokens() -> [Int32] {
        var rng = RandomGenerator(seed: 4)
        var ids = [Int32](repeating: 0, count: 3 * 15)
        for (b, n) in [5, 15, 9].enumerated() {
            ids[b * 15] = 1
            for t in 1..<(n - 1) { ids[b * 15 + t] = Int32(3 + rng.nextInt(upperBound: 60)) }
            ids[b * 15 + n - 1] = 2
        }
        return ids
    }

    func testGradients() {
        let store = ParameterStore()
        let text = TextTransformer(config: Self.config(), training: .fullFineTune, store: store)
        store.allocate(seed: 7)
        LayerGradientTests.randomize(store, seed: 8, std: 0.2)
        let ids = Self.tokens()
        ids.withUnsafeBufferPointer { p in
            LayerGradientTests.checkGradients(
                store: store, outputCount: 3 * 24, maxElements: 16,
                forward: { text.forward(tokens: p.baseAddress!, batch: 3) },
                backward: { text.backward(dFeatures: $0) })
        }
        XCTAssertEqual(text.poolPositions, [15, 15, 15])
        XCTAssertEqual(text.positionEmbedding.shape, [16, 32])
        XCTAssertNotNil(text.classEmbedding?.gradient)
    }

    /// Ids after the first padding id never reach the class row; every id before it does, and
    /// so does the class embedding. Under LoRA the class embedding is frozen like the others.
    func testMaskSemanticsAndRegions() {
        let store = ParameterStore()
        let text = TextTransformer(config: Self.config(), training: .frozen, store: store)
        store.allocate(seed: 9)
        LayerGradientTests.randomize(store, seed: 10, std: 0.3)
        func run(_ ids: [Int32]) -> [Float] {
            ids.withUnsafeBufferPointer { Array(UnsafeBufferPointer(start: text.forward(tokens: $0.baseAddress!, batch: 3), count: 72)) }
        }
        var ids = Self.tokens()
        let reference = run(ids)
        ids[7] = 40; ids[14] = 41          // after the first padding id of sequence 0 (at 5)
        XCTAssertEqual(run(ids), reference)
        ids[3] = 42                        // inside sequence 0
        XCTAssertNotEqual(Array(run(ids)[0..<24]), Array(reference[0..<24]))
        text.classEmbedding!.value[0] += 1
        XCTAssertNotEqual(Array(run(Self.tokens())[24..<48]), Array(reference[24..<48]))

        let lora = ParameterStore()
        let adapted = TextTransformer(config: Self.config(), training: TowerTraining(lora: LoRAConfig(rank: 2, alpha: 4)),
                                      store: lora)
        XCTAssertFalse(adapted.classEmbedding!.isTrainable)
    }

    func testConfigDecodesWithoutNewKeys() throws {
        var object = try XCTUnwrap(JSONSerialization.jsonObject(with: JSONEncoder().encode(TextConfig.tiny)) as? [String: Any])
        object["classEmbedding"] = nil
        XCTAssertEqual(try JSONDecoder().decode(TextConfig.self, from: JSONSerialization.data(withJSONObject: object)), .tiny)
        XCTAssertEqual(try JSONDecoder().decode(TextConfig.self, from: JSONEncoder().encode(Self.config())), Self.config())
    }
}
