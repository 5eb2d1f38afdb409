@testable import Formats
import Foundation
import XCTest

/// The reader against the reference fixtures (made by reference/make_fixtures.py with the Python
/// `safetensors` package). FormatsTests declares no resources, so the files are found from this
/// source file's path in the checkout; the test is skipped where the checkout is not present.
final class FixtureFilesTests: XCTestCase {
    private func fixture(_ name: String) throws -> SafeTensorsFile {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../ModelTests/Fixtures/\(name)").standardized.path
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("no checkout at \(path)") }
        return try SafeTensorsFile(path: path)
    }

    func testCLIPITFixture() throws {
        let st = try fixture("clipit_tiny.safetensors")
        XCTAssertEqual(st.metadata["generator"], "python reference/make_fixtures.py")
        XCTAssertEqual(try st.info("vision.patch_embed.proj.lora_A.weight").shape, [4, 3, 8, 8])
        XCTAssertEqual(try st.info("text.embeddings.token_embedding.lora_embedding_A").shape, [4, 64])
        XCTAssertEqual(try st.info("input.token_ids").dtype, .i64)
        let ids = try st.ints("input.token_ids")
        XCTAssertEqual(ids.count, 3 * 16)
        XCTAssertEqual(ids.filter { $0 == 63 }.count, 3)   // one end-of-text per row
        let loss = try st.floats("output.loss")[0]
        let ce = try st.floats("output.ce_loss")[0]
        let distill = try st.floats("output.distill_loss")[0]
        XCTAssertEqual(loss, ce + distill, accuracy: 1e-6)
        XCTAssertEqual(try st.floats("trajectory.adam_clip.loss")[0], loss, accuracy: 1e-6)
        // Every trainable parameter has a gradient of its shape, and nothing else does.
        let parameters = st.names.filter { ["vision.", "text.", "heads."].contains(where: $0.hasPrefix) }
        let trainable = parameters.filter { $0.contains(".lora_") || $0.hasPrefix("heads.") }
        XCTAssertEqual(trainable.count, 18 + 26 + 10)  // vision LoRA, text LoRA, heads
        for name in trainable {
            XCTAssertEqual(try st.info("grad." + name).shape, try st.info(name).shape, name)
        }
        XCTAssertEqual(st.names.filter { $0.hasPrefix("grad.") }.count, trainable.count + 1)  // + input.images
    }

    func testOtherFixturesOpen() throws {
        let unimodal = try fixture("unimodal_lora_tiny.safetensors")
        XCTAssertFalse(unimodal.names.contains { $0.hasPrefix("text.") })
        XCTAssertEqual(try unimodal.info("output.vision_logits").shape, [3, 3])
        let layers = try fixture("layers_tiny.safetensors")
        XCTAssertEqual(try layers.info("layer.vit_block.input").shape, [3, 5, 32])
        XCTAssertEqual(try layers.info("layer.lora_embedding.input").dtype, .i64)
    }
}
