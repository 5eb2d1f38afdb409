import Datasets
import Formats
import Foundation
import Model

// A pretrained retriever's file: the Model module does no file I/O, so exporting and
// loading live here.

extension RetrieverModel {
    /// The metadata key holding the JSON `RetrieverConfig` (inference form) of an export.
    public static let configMetadataKey = "clipit.retriever.config"
    /// The metadata key holding the format name.
    public static let formatMetadataKey = "clipit.format"
    public static let formatName = "clipit-retriever-v1"
    /// The metadata key holding the word tokenizer's state (`WordTokenizer.stateJSON`).
    public static let tokenizerMetadataKey = "clipit.tokenizer"
    /// The metadata key holding the image normalisation's name (`Normalization(named:)`).
    public static let normalizationMetadataKey = "clipit.retriever.normalization"

    /// Writes the model for inference: LoRA (if any) is merged into the base weights and
    /// only base parameters are written under their contract names (`vision.*`, `text.*`,
    /// `logit_scale`), so the file loads into a plain retriever and its towers can
    /// initialise CLIP-IT's (`model.init_vision` / `model.init_text`). `metadata` is stored
    /// beside the configuration (e.g. the tokenizer). The model is left unmerged.
    public func export(to path: String, metadata: [String: String] = [:]) throws {
        let hasLoRA = store.parameters.contains { isLoRAParameterName($0.name) }
        if hasLoRA { vision.mergeLoRA(); text.mergeLoRA() }
        defer { if hasLoRA { vision.unmergeLoRA(); text.unmergeLoRA() } }
        var meta = metadata
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        meta[Self.configMetadataKey] = String(decoding: try encoder.encode(config.inference), as: UTF8.self)
        meta[Self.formatMetadataKey] = Self.formatName
        var writer = SafeTensorsWriter(metadata: meta)
        for p in store.parameters where !isLoRAParameterName(p.name) {
            writer.add(p.name, shape: p.shape, pointer: p.value, count: p.count)
        }
        try writer.write(to: path)
    }

    /// Loads an export written by `export(to:)`: rebuilds the (frozen, LoRA-free)
    /// architecture from the stored configuration and reads every parameter. Returns the
    /// model and the file's metadata.
    public static func load(path: String) throws -> (model: RetrieverModel, metadata: [String: String]) {
        let file = try SafeTensorsFile(path: path)
        guard file.metadata[formatMetadataKey] == formatName, let json = file.metadata[configMetadataKey] else {
            throw RetrieverError("\(path) is not a retriever export (no '\(configMetadataKey)' metadata); "
                                     + "write one with `clipit pretrain`")
        }
        let config: RetrieverConfig
        do {
            config = try JSONDecoder().decode(RetrieverConfig.self, from: Data(json.utf8))
        } catch {
            throw RetrieverError("\(path): unreadable configuration (\(error))")
        }
        let model = try RetrieverModel(config, seed: 0)
        try model.store.load(from: file, prefix: "", allowMissing: { _ in false })
        model.isTraining = false
        return (model, file.metadata)
    }
}
