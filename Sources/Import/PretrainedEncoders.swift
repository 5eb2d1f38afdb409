import Datasets
import Formats
import Foundation
import Kernels
import Model

/// Frozen towers of a pretrained model, ready to embed: one `ParameterStore` holding the
/// imported weights, the vision and/or text tower, the tokenizer and the preprocessing.
public final class PretrainedEncoders {
    public let model: PretrainedModel
    public let store: ParameterStore
    public let vision: VisionTransformer?
    public let text: TextTransformer?
    public let tokenizer: (any PretrainedTokenizer)?
    public let report: ImportReport

    /// Builds the requested towers (frozen, no LoRA) and imports their weights.
    public init(_ model: PretrainedModel, vision wantVision: Bool = true, text wantText: Bool = true) throws {
        self.model = model
        if wantVision && model.vision == nil {
            throw ImportFileError(path: model.directory, reason: "this \(model.family.rawValue) model has no image tower")
        }
        if wantText && model.text == nil {
            throw ImportFileError(path: model.directory, reason: "this \(model.family.rawValue) model has no text tower "
                                  + "(timm checkpoints are image-only)")
        }
        let store = ParameterStore()
        vision = wantVision ? VisionTransformer(config: model.vision!, training: .frozen, store: store) : nil
        text = wantText ? TextTransformer(config: model.text!, training: .frozen, store: store) : nil
        vision?.isTraining = false
        text?.isTraining = false
        tokenizer = wantText ? try model.makeTokenizer() : nil
        store.allocate(seed: 0)
        report = try model.importWeights(into: store, vision: wantVision, text: wantText)
        self.store = store
    }

    /// Width of the embeddings of each tower.
    public var imageEmbeddingDim: Int? { vision?.outputDim }
    public var textEmbeddingDim: Int? { text?.outputDim }

    /// Projected image embeddings (batch, imageEmbeddingDim) of preprocessed images
    /// (batch, 3, S, S), S = the tower's image size.
    public func embedImages(_ pixels: UnsafePointer<Float>, batch: Int) -> [Float] {
        guard let vision else { preconditionFailure("PretrainedEncoders: no image tower loaded") }
        let out = vision.forward(images: pixels, batch: batch)
        return Array(UnsafeBufferPointer(start: out, count: batch * vision.outputDim))
    }

    /// Projected text embeddings (batch, textEmbeddingDim) of token ids (batch, contextLength).
    public func embedTokens(_ ids: [Int32], batch: Int) -> [Float] {
        guard let text else { preconditionFailure("PretrainedEncoders: no text tower loaded") }
        precondition(ids.count == batch * text.config.contextLength, "embedTokens: \(ids.count) ids for \(batch) rows")
        return ids.withUnsafeBufferPointer { p in
            let out = text.forward(tokens: p.baseAddress!, batch: batch)
            return Array(UnsafeBufferPointer(start: out, count: batch * text.outputDim))
        }
    }

    /// Tokenises and embeds texts.
    public func embedTexts(_ texts: [String]) -> [Float] {
        guard let tokenizer else { preconditionFailure("PretrainedEncoders: no text tower loaded") }
        return embedTokens(tokenizer.tokenize(texts), batch: texts.count)
    }
}

extension PretrainedEncoders {
    /// Writes the imported towers with our parameter names (docs/model-contract.md), the
    /// format `model.init_vision` / `model.init_text` and `ParameterStore.load` read. The
    /// metadata records the source folder, the family and the encoder configs as JSON.
    public func writeInternalWeights(to path: String) throws {
        var metadata = ["source": model.directory, "family": model.family.rawValue]
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        if let v = vision { metadata["vision_config"] = String(decoding: try encoder.encode(v.config), as: UTF8.self) }
        if let t = text { metadata["text_config"] = String(decoding: try encoder.encode(t.config), as: UTF8.self) }
        var writer = SafeTensorsWriter(metadata: metadata)
        for p in store.parameters { writer.add(p.name, shape: p.shape, pointer: p.value, count: p.count) }
        try writer.write(to: path)
    }
}

/// Scales each row of a row-major (rows, width) matrix to unit L2 norm (rows of zeros stay zero).
/// In place, with Kernels' `l2NormalizeForward` (the pairing's normalisation too).
public func normalizeRows(_ x: inout [Float], width: Int) {
    precondition(width > 0 && x.count % width == 0, "normalizeRows: \(x.count) values are not rows of \(width)")
    let rows = x.count / width
    var norms = [Float](repeating: 0, count: rows)
    x.withUnsafeMutableBufferPointer { p in
        l2NormalizeForward(p.baseAddress!, p.baseAddress!, norms: &norms, rows: rows, cols: width)
    }
}
