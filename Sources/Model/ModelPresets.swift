/// The tower architectures of the named presets, shared by Stage 2 training
/// (`model.preset`) and retriever pretraining (`clipit pretrain --preset`), so that a
/// pretrained retriever's towers can initialise CLIP-IT's.
///
/// - `tiny`: the test towers of docs/model-contract.md (16 px images, patch 8, E = 32,
///   depth 2; text context 16, width 32, depth 2, vocabulary 128, 24-d projection).
/// - `demo`: a small ViT (64 px, patch 8, E = 128, depth 4, 4 heads, MLP 256) and a small
///   text transformer (context 32, width 96, depth 2, vocabulary 512, 128-d projection).
public struct ModelPreset: Sendable, Equatable {
    public var name: String
    public var vision: VisionConfig
    public var text: TextConfig

    /// The names `named(_:)` accepts.
    public static let names = ["tiny", "demo"]

    /// The preset `name`, or nil for an unknown name.
    public static func named(_ name: String) -> ModelPreset? {
        switch name {
        case "tiny":
            let text = TextConfig(vocabularySize: 128, contextLength: 16, width: 32, depth: 2, heads: 4, mlpHidden: 64,
                                  activation: .quickGELU, layerNormEps: 1e-5, projectionDim: 24, endOfTextId: 127)
            return ModelPreset(name: name, vision: .tiny, text: text)
        case "demo":
            let vision = VisionConfig(imageSize: 64, patchSize: 8, width: 128, depth: 4, heads: 4, mlpHidden: 256,
                                      activation: .gelu, layerNormEps: 1e-6, layerScaleInit: nil, preNorm: false,
                                      pooling: .cls, projectionDim: nil, patchBias: true)
            let text = TextConfig(vocabularySize: 512, contextLength: 32, width: 96, depth: 2, heads: 4, mlpHidden: 192,
                                  activation: .quickGELU, layerNormEps: 1e-5, projectionDim: 128, endOfTextId: 511)
            return ModelPreset(name: name, vision: vision, text: text)
        default:
            return nil
        }
    }
}
