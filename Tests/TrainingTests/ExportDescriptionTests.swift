import Distributed
import Formats
import Foundation
@testable import Model
@testable import Training
import XCTest

/// What `clipit export` writes for PyTorch (the timm config, the base weights, the model
/// description, the example); `Tests/Export/run.sh` runs the example against clipit
/// predict with timm and PEFT.
final class ExportDescriptionTests: XCTestCase {
    var data: TinyTrainingData!

    override func setUpWithError() throws { data = try TinyTrainingData() }
    override func tearDown() { data.remove() }

    func testTheExportDescribesTheTimmTowerItsBaseWeightsAndTheHeads() throws {
        let run = data.directory + "/run", out = data.directory + "/export"
        let config = try data.config(method: "clipit", overrides: ["train.max_steps=1"])
        _ = try Trainer(config: config, comm: SingleRankCommunicator(), outputDirectory: run, showProgress: false).run()
        let (model, header) = try Checkpoint.loadModel(run + "/last.safetensors")
        try ExportDescription.write(model: model, header: header, to: out)

        let timm = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/vision/config.json"))) as? [String: Any])
        let args = try XCTUnwrap(timm["model_args"] as? [String: Any])
        let v = header.config.model.vision
        XCTAssertEqual(args["embed_dim"] as? Int, v.width)
        XCTAssertEqual(args["depth"] as? Int, v.depth)
        XCTAssertEqual(args["num_heads"] as? Int, v.heads)
        XCTAssertEqual(args["patch_size"] as? Int, v.patchSize)
        XCTAssertEqual(args["img_size"] as? Int, v.imageSize)
        XCTAssertEqual(args["mlp_ratio"] as? Double, Double(v.mlpHidden) / Double(v.width))
        XCTAssertEqual(try XCTUnwrap(args["init_values"] as? Double), Double(try XCTUnwrap(v.layerScaleInit)), accuracy: 1e-12)

        let base = try SafeTensorsFile(path: out + "/vision/base_model.safetensors")
        let expected = model.store.parameters.filter { $0.name.hasPrefix("vision.") && !$0.name.contains(".lora_") }
        XCTAssertEqual(Set(base.names), Set(expected.map { String($0.name.dropFirst("vision.".count)) }))
        XCTAssertTrue(base.names.contains("cls_token") && base.names.contains("blocks.0.attn.qkv.weight"))

        let spec = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/clipit_model.json"))) as? [String: Any])
        XCTAssertEqual(spec["classes"] as? [String], header.classNames)
        let heads = try XCTUnwrap(spec["heads"] as? [String: Any])
        XCTAssertEqual(heads["kind"] as? String, "clipit")
        XCTAssertEqual(heads["fusion"] as? String, "late")
        XCTAssertEqual((spec["preprocessing"] as? [String: Any])?["mode"] as? String, "crop_box")
        let example = try String(contentsOfFile: out + "/predict_example.py", encoding: .utf8)
        XCTAssertTrue(example.hasPrefix("\"\"\"Predict with the model"), "no indentation left from the Swift literal")
        XCTAssertTrue(example.contains("PeftModel.from_pretrained"))
    }

    func testATextModelHasNoImageOnlyExample() throws {
        let run = data.directory + "/text"
        let config = try data.config(method: "text-only", overrides: ["train.max_steps=1"])
        _ = try Trainer(config: config, comm: SingleRankCommunicator(), outputDirectory: run, showProgress: false).run()
        let (model, header) = try Checkpoint.loadModel(run + "/last.safetensors")
        XCTAssertThrowsError(try ExportDescription.write(model: model, header: header, to: data.directory + "/x")) {
            XCTAssertTrue("\($0)".contains("reads paired reports"), "\($0)")
        }
    }
}
