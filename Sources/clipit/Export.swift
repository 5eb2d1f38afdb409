import ArgumentParser
import Formats
import Foundation
import Import
import Model
import Training

/// `clipit export`: trained LoRA adapters as PEFT adapter folders, heads, and a merged model.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export trained LoRA adapters as PEFT adapter folders (and optionally a merged model).",
        discussion: """
            Writes OUT/vision/ and OUT/text/ (adapter_config.json + adapter_model.safetensors, PEFT \
            key names over timm / Hugging Face module paths) for each tower with LoRA, \
            OUT/heads.safetensors (the CLIP-IT heads, internal names), and with --merged \
            OUT/merged.safetensors (every tower and head tensor, LoRA folded into the base weights, \
            internal names). From a clipit checkpoint of an image model with a timm-style vision \
            tower it also writes OUT/vision/config.json (timm) and OUT/vision/base_model.safetensors \
            (the base weights the adapter applies to), OUT/clipit_model.json (classes, \
            preprocessing, heads) and OUT/predict_example.py, which reproduces clipit predict \
            with timm, PEFT and the heads. --checkpoint is a clipit training checkpoint (the model is rebuilt \
            from its config, LoRA α and dropout come from it) or any safetensors file of internal \
            parameter names (then --lora-alpha is required). See docs/importing.md.
            """)

    @Option(help: "A clipit checkpoint, or a safetensors file of internal parameter names.")
    var checkpoint: String

    @Option(help: "Output folder (created if missing).")
    var out: String

    @Flag(help: "Also write merged.safetensors with LoRA folded into the base weights.")
    var merged = false

    @Option(help: "LoRA alpha (required for a plain parameter file; overrides a checkpoint's).")
    var loraAlpha: Float?

    @Option(help: "LoRA dropout recorded in adapter_config.json (default: the checkpoint's, else 0).")
    var loraDropout: Float?

    @Option(help: "base_model_name_or_path for the vision adapter (e.g. a timm hub name).")
    var visionBaseModel: String?

    @Option(help: "base_model_name_or_path for the text adapter (e.g. a Hugging Face repo id).")
    var textBaseModel: String?

    func run() throws {
        let file = try SafeTensorsFile(path: checkpoint)
        let tensors: [String: NamedTensor]
        var alpha = loraAlpha, dropout = loraDropout
        var loaded: (model: any TrainableModel, header: Checkpoint.Header)?
        if file.metadata["clipit.format"] != nil {
            let (model, header) = try Checkpoint.loadModel(checkpoint)
            loaded = (model, header)
            var all = PEFTExporter.tensors(from: model.store)
            if header.config.model.text.classEmbedding, all.keys.contains(where: { $0.hasPrefix("text.") && isLoRAParameterName($0) }) {
                // PEFT keys are written over Hugging Face CLIP module paths; CONCH's text tower has others.
                all = all.filter { !($0.key.hasPrefix("text.") && isLoRAParameterName($0.key)) }
                print("export: the text tower is CONCH's: no PEFT text adapter (its module paths are not Hugging Face "
                      + "CLIP's); its LoRA stays in the checkpoint and in --merged")
            }
            tensors = all
            alpha = alpha ?? header.config.model.lora.alpha
            dropout = dropout ?? header.config.model.lora.dropout
            print("export: checkpoint \(checkpoint) (method \(header.config.method), step \(header.state.step))")
        } else {
            tensors = try PEFTExporter.tensors(from: file)
            print("export: parameter file \(checkpoint) (\(tensors.count) model tensors)")
        }
        var settings: [PEFTTower: AdapterSettings] = [:]
        if let alpha {
            for tower in PEFTTower.allCases { settings[tower] = AdapterSettings(alpha: alpha, dropout: dropout ?? 0) }
        } else if tensors.keys.contains(where: isLoRAParameterName) {
            throw ValidationError("'\(checkpoint)' is not a clipit checkpoint, so the LoRA alpha is unknown: pass --lora-alpha (the α the adapters were trained with)")
        }
        var baseModels: [PEFTTower: String] = [:]
        if let visionBaseModel { baseModels[.vision] = visionBaseModel }
        if let textBaseModel { baseModels[.text] = textBaseModel }
        let report = try PEFTExporter.export(tensors, settings: settings, to: out, merged: merged, baseModels: baseModels)
        if report.adapters.isEmpty { print("export: no LoRA factors in the source; no adapter folder written") }
        for adapter in report.adapters {
            print("export: \(adapter.directory): PEFT LoRA adapter, r \(adapter.rank), α \(alpha ?? 0), \(adapter.targetModules.count) target modules")
        }
        if let heads = report.headsPath { print("export: \(heads): \(report.headCount) head tensors") }
        if let mergedPath = report.mergedPath { print("export: \(mergedPath): \(report.mergedCount) tensors, LoRA merged") }
        guard let (model, header) = loaded else { return }
        do {
            try ExportDescription.write(model: model, header: header, to: out)
            print("export: \(out)/vision/config.json and base_model.safetensors (timm), clipit_model.json, "
                  + "predict_example.py (python predict_example.py IMAGE…)")
        } catch let error as TrainingError {
            print("export: no loading example: \(error)")
        }
    }
}
