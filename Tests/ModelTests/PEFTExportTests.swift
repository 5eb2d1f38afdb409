import Formats
import Foundation
@testable import Import
import Kernels
@testable import Model
import XCTest

final class PEFTExportTests: XCTestCase {
    var directory = ""
    override func setUp() {
        directory = NSTemporaryDirectory() + "clipit-peft-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try! FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: directory) }

    /// The tiny CLIP-IT model of docs/model-contract.md with LoRA (r 4, α 8) on both
    /// towers and non-zero B factors, so that merging changes every targeted weight.
    func tinyModel() -> CLIPITModel {
        let training = TowerTraining(lora: LoRAConfig(rank: 4, alpha: 8), targets: .all)
        let model = CLIPITModel(CLIPITConfig(vision: .tiny, text: .tiny, visionTraining: training,
                                             textTraining: training, classes: 3), seed: 11)
        var rng = RandomGenerator(seed: 5)
        for p in model.store.parameters where p.name.contains("lora_B") || p.name.hasSuffix("lora_embedding_A") {
            rng.fillGaussian(p.value, count: p.count, mean: 0, std: 0.05)
        }
        return model
    }

    func testNameMapping() {
        XCTAssertEqual(PEFTNames.adapterKey("vision.blocks.1.attn.qkv.lora_A.weight")?.key,
                       "base_model.model.blocks.1.attn.qkv.lora_A.weight")
        XCTAssertEqual(PEFTNames.adapterKey("vision.patch_embed.proj.lora_B.weight")?.key,
                       "base_model.model.patch_embed.proj.lora_B.weight")
        XCTAssertEqual(PEFTNames.adapterKey("text.encoder.layers.0.self_attn.q_proj.lora_B.weight")?.key,
                       "base_model.model.text_model.encoder.layers.0.self_attn.q_proj.lora_B.weight")
        XCTAssertEqual(PEFTNames.adapterKey("text.embeddings.token_embedding.lora_embedding_A")?.key,
                       "base_model.model.text_model.embeddings.token_embedding.lora_embedding_A")
        XCTAssertEqual(PEFTNames.upstream("text.text_projection.weight")?.name, "text_projection.weight")
        XCTAssertEqual(PEFTNames.internalName(tower: .text, upstream: "text_projection.weight"), "text.text_projection.weight")
        XCTAssertEqual(PEFTNames.internalName(tower: .text, upstream: "text_model.final_layer_norm.bias"), "text.final_layer_norm.bias")
        XCTAssertNil(PEFTNames.adapterKey("heads.fusion.weight"))
        XCTAssertNil(PEFTNames.adapterKey("vision.blocks.0.attn.qkv.weight"))
    }

    /// Export → re-import gives the identical factors and heads; the config records r, α,
    /// the targets; merged weights equal the model's own `mergeLoRA` bit for bit and
    /// W + s·B A computed in double precision.
    func testRoundTripAndMerge() throws {
        let model = tinyModel()
        let tensors = PEFTExporter.tensors(from: model.store)
        let settings: [PEFTTower: AdapterSettings] = [.vision: AdapterSettings(alpha: 8), .text: AdapterSettings(alpha: 8, dropout: 0.1)]
        let report = try PEFTExporter.export(tensors, settings: settings, to: directory, merged: true,
                                             baseModels: [.vision: "timm/tiny-vit"])
        XCTAssertEqual(report.adapters.map(\.tower), [.vision, .text])
        XCTAssertEqual(report.adapters[0].targetModules.count, 9)    // 2 × (qkv, proj, fc1, fc2) + patch_embed.proj
        XCTAssertEqual(report.adapters[1].targetModules.count, 13)   // 2 × (q, k, v, out, fc1, fc2) + token_embedding
        XCTAssertTrue(report.adapters[0].targetModules.contains("patch_embed.proj"))
        XCTAssertTrue(report.adapters[1].targetModules.contains("text_model.embeddings.token_embedding"))
        XCTAssertEqual(report.headCount, 10)

        for tower in PEFTTower.allCases {
            let back = try PEFTExporter.readAdapter(directory: directory + "/" + tower.rawValue, tower: tower)
            XCTAssertEqual(back.rank, 4)
            XCTAssertEqual(back.settings, settings[tower])
            let expected = model.store.parameters.filter { $0.name.hasPrefix(tower.prefix) && isLoRAParameterName($0.name) }
            XCTAssertEqual(Set(back.tensors.keys), Set(expected.map(\.name)))
            for p in expected {
                XCTAssertEqual(back.tensors[p.name], tensors[p.name], p.name)
            }
        }
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/text/adapter_config.json"))) as! [String: Any]
        XCTAssertEqual(config["peft_type"] as? String, "LORA")
        XCTAssertEqual(config["lora_alpha"] as? Int, 8)
        XCTAssertEqual(config["lora_dropout"] as? Double, 0.1)
        XCTAssertTrue(config["task_type"] is NSNull)
        XCTAssertTrue(config["base_model_name_or_path"] is NSNull)
        let adapter = try SafeTensorsFile(path: directory + "/vision/adapter_model.safetensors")
        XCTAssertTrue(adapter.names.allSatisfy { $0.hasPrefix("base_model.model.") })
        XCTAssertEqual(adapter.names.count, 18)

        let heads = try SafeTensorsFile(path: directory + "/heads.safetensors")
        for name in heads.names { XCTAssertEqual(try heads.floats(name), tensors[name]!.values, name) }

        // Merged file: internal names, no LoRA factors, W + s·B A.
        let merged = try SafeTensorsFile(path: directory + "/merged.safetensors")
        XCTAssertFalse(merged.names.contains(where: isLoRAParameterName))
        let qkv = "vision.blocks.0.attn.qkv", s: Double = 8.0 / 4
        let w = tensors[qkv + ".weight"]!.values, a = tensors[qkv + ".lora_A.weight"]!.values, b = tensors[qkv + ".lora_B.weight"]!.values
        let mergedQKV = try merged.floats(qkv + ".weight")
        for o in [0, 17, 95] {
            for i in [0, 5, 31] {
                var update = 0.0
                for k in 0..<4 { update += Double(b[o * 4 + k]) * Double(a[k * 32 + i]) }
                XCTAssertEqual(Double(mergedQKV[o * 32 + i]), Double(w[o * 32 + i]) + s * update, accuracy: 1e-6)
            }
        }
        let emb = "text.embeddings.token_embedding"
        let ea = tensors[emb + ".lora_embedding_A"]!.values, eb = tensors[emb + ".lora_embedding_B"]!.values
        let mergedEmb = try merged.floats(emb + ".weight")
        for (v, d) in [(0, 0), (63, 31), (10, 7)] {
            var update = 0.0
            for k in 0..<4 { update += Double(ea[k * 64 + v]) * Double(eb[d * 4 + k]) }
            XCTAssertEqual(Double(mergedEmb[v * 32 + d]), Double(tensors[emb + ".weight"]!.values[v * 32 + d]) + s * update, accuracy: 1e-6)
        }
        model.mergeLoRA()
        for p in model.store.parameters where !isLoRAParameterName(p.name) {
            XCTAssertEqual(try merged.floats(p.name), Array(UnsafeBufferPointer(start: p.value, count: p.count)), p.name)
        }
        XCTAssertEqual(merged.names.count, model.store.parameters.filter { !isLoRAParameterName($0.name) }.count)
    }

    /// The merged model loads into a tower without LoRA and predicts what the LoRA model does.
    func testMergedWeightsLoadIntoAPlainModel() throws {
        let model = tinyModel()
        try PEFTExporter.export(PEFTExporter.tensors(from: model.store), settings: [.vision: .init(alpha: 8), .text: .init(alpha: 8)],
                                to: directory, merged: true)
        let plain = CLIPITModel(CLIPITConfig(vision: .tiny, text: .tiny, visionTraining: .frozen, textTraining: .frozen, classes: 3), seed: 0)
        try plain.load(from: SafeTensorsFile(path: directory + "/merged.safetensors"))
        var rng = RandomGenerator(seed: 9)
        let images = Tensor(shape: [2, 3, 16, 16])
        rng.fillGaussian(images.data, count: images.count, mean: 0, std: 1)
        model.isTraining = false
        let expected = Array(UnsafeBufferPointer(start: model.predict(images: images.data, batch: 2), count: 6))
        let got = Array(UnsafeBufferPointer(start: plain.predict(images: images.data, batch: 2), count: 6))
        for (x, y) in zip(got, expected) { XCTAssertEqual(x, y, accuracy: 1e-5) }
    }

    /// From a parameter file (the unimodal fixture): only model tensors are taken.
    func testExportFromFixtureFile() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/unimodal_lora_tiny.safetensors")
        guard FileManager.default.fileExists(atPath: url.path) else { throw XCTSkip("fixture not generated") }
        let tensors = try PEFTExporter.tensors(from: SafeTensorsFile(path: url.path))
        XCTAssertFalse(tensors.keys.contains { $0.hasPrefix("input.") || $0.hasPrefix("output.") || $0.hasPrefix("grad.") })
        let report = try PEFTExporter.export(tensors, settings: [.vision: .init(alpha: 8)], to: directory, merged: true)
        XCTAssertEqual(report.adapters.map(\.tower), [.vision])
        XCTAssertEqual(report.headCount, 2)
        XCTAssertThrowsError(try PEFTExporter.export(tensors, settings: [:], to: directory + "/x")) { error in
            XCTAssertTrue("\(error)".contains("no α"), "\(error)")
        }
        var withoutBase = tensors
        withoutBase["vision.blocks.0.mlp.fc1.weight"] = nil
        XCTAssertThrowsError(try PEFTExporter.mergedTensors(withoutBase, settings: [.vision: .init(alpha: 8)])) { error in
            XCTAssertTrue("\(error)".contains("vision.blocks.0.mlp.fc1.weight"), "\(error)")
        }
    }
}
