import Datasets
import Formats
import Foundation
import Model

/// The upstream formats `PretrainedModel` reads.
public enum ModelFamily: String, Codable, Sendable {
    /// transformers `CLIPModel` folder: `config.json` with `vision_config` / `text_config`,
    /// `model.safetensors`, `vocab.json` + `merges.txt`, optional `preprocessor_config.json`.
    case huggingFaceCLIP = "hf-clip"
    /// open_clip model converted to safetensors: `open_clip_config.json` (`model_cfg` +
    /// `preprocess_cfg`, as on the Hugging Face hub), `*.safetensors`, the BPE `.txt.gz`.
    case openCLIP = "open_clip"
    /// timm `VisionTransformer`: `config.json` with `architecture` (+ `model_args`,
    /// `pretrained_cfg`), `model.safetensors`. Image tower only.
    case timm
    /// MahmoodLab CONCH: its model config (`conch_ViT-B-16.json`) and `model.safetensors`
    /// converted from `pytorch_model.bin`. Image tower only (`CONCHConfig`).
    case conch
}

/// Which tokenizer files a folder has.
public enum TokenizerFiles: Equatable, Sendable {
    case vocabularyAndMerges(vocabulary: String, merges: String)
    case bpeGzip(String)
    /// A Hugging Face `tokenizers` JSON of a byte-level BPE (CONCH's).
    case byteLevelBPEJSON(String)

    /// The files, for fingerprints.
    public var paths: [String] {
        switch self {
        case .vocabularyAndMerges(let v, let m): return [v, m]
        case .bpeGzip(let g), .byteLevelBPEJSON(let g): return [g]
        }
    }
}

/// A pretrained model folder: its family, the architecture read from its own config,
/// translated into our encoder configs, the evaluation preprocessing, the tokenizer files
/// and the name mapping from our parameter names (docs/model-contract.md) to its tensors.
///
/// Each family's choices are explicit here: activation (CLIP towers QuickGELU when the config
/// says so, timm exact GELU), LayerNorm eps (CLIP 1e-5, timm 1e-6, or the config's), pre-norm
/// (CLIP `pre_layrnorm` / `ln_pre`, timm `norm_pre` only with `pre_norm`), pooling (class
/// token; open_clip `pool_type='avg'` = mean of normed patch tokens; text at the first
/// end-of-text token, which is the `argmax` of the ids when end-of-text is the largest id)
/// and projection orientation (HF Linear `(out, in)`; open_clip `proj`, `text_projection`
/// `(width, out)`, transposed on import).
public struct PretrainedModel {
    public let directory: String
    public let family: ModelFamily
    public let vision: VisionConfig?
    public let text: TextConfig?
    public let preprocessing: ImagePreprocessing?
    public let weightsPath: String
    public let tokenizerFiles: TokenizerFiles?
    /// How texts are normalised for this family's tokenizer.
    public let textNormalization: TextNormalization
    public let mapping: WeightMapping

    /// Reads the folder's config; no weights are read.
    public init(directory: String) throws {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ImportFileError(path: directory, reason: "not a directory; --model expects a model folder")
        }
        self.directory = directory
        let file = { (name: String) in (directory as NSString).appendingPathComponent(name) }
        let entries = (try? fm.contentsOfDirectory(atPath: directory))?.sorted() ?? []
        let safetensors = entries.filter { $0.hasSuffix(".safetensors") }

        func weights(preferred: [String]) throws -> String {
            if let p = preferred.first(where: { entries.contains($0) }) { return file(p) }
            if safetensors.count == 1 { return file(safetensors[0]) }
            if entries.contains(where: { $0.hasSuffix(".safetensors.index.json") }) {
                throw ImportFileError(path: directory, reason: "sharded safetensors (*.index.json) are not supported; "
                                      + "merge the shards into one model.safetensors")
            }
            let hint = entries.contains(where: { $0.hasSuffix(".bin") || $0.hasSuffix(".pt") || $0.hasSuffix(".pth") })
                ? " (PyTorch pickles are not read: convert them, docs/running-the-paper-setup.md)" : ""
            throw ImportFileError(path: directory, reason: "expected one weights file \(preferred.joined(separator: " or ")), "
                                  + "found \(safetensors.isEmpty ? "no .safetensors" : safetensors.joined(separator: ", "))\(hint)")
        }

        if let configPath = CONCHConfig.configFile(in: directory, entries: entries) {
            family = .conch
            let parsed = try CONCHConfig(try JSONConfig(path: configPath))
            (vision, text, preprocessing, mapping) = (parsed.vision, parsed.text, parsed.preprocessing, parsed.mapping)
            weightsPath = try weights(preferred: ["model.safetensors"])
            textNormalization = .openCLIP   // unused: the byte-level tokenizer normalises itself
            tokenizerFiles = CONCHConfig.tokenizerFile(in: directory, entries: entries).map { .byteLevelBPEJSON($0) }
        } else if entries.contains("open_clip_config.json") {
            family = .openCLIP
            let parsed = try OpenCLIPConfig(path: file("open_clip_config.json"))
            (vision, text, preprocessing, mapping) = (parsed.vision, parsed.text, parsed.preprocessing, parsed.mapping)
            weightsPath = try weights(preferred: ["open_clip_model.safetensors", "model.safetensors"])
            textNormalization = .openCLIP
            if let gz = entries.first(where: { $0 == "bpe_simple_vocab_16e6.txt.gz" })
                ?? entries.first(where: { $0.hasSuffix(".txt.gz") }) {
                tokenizerFiles = .bpeGzip(file(gz))
            } else if entries.contains("vocab.json"), entries.contains("merges.txt") {
                tokenizerFiles = .vocabularyAndMerges(vocabulary: file("vocab.json"), merges: file("merges.txt"))
            } else {
                tokenizerFiles = nil
            }
        } else if entries.contains("config.json") {
            let config = try JSONConfig(path: file("config.json"))
            if config.has("vision_config") || config.has("text_config") {
                family = .huggingFaceCLIP
                let preprocessorPath = entries.contains("preprocessor_config.json") ? file("preprocessor_config.json") : nil
                let parsed = try HFCLIPConfig(config, preprocessorPath: preprocessorPath)
                (vision, text, preprocessing, mapping) = (parsed.vision, parsed.text, parsed.preprocessing, parsed.mapping)
                weightsPath = try weights(preferred: ["model.safetensors"])
                textNormalization = .huggingFace
                tokenizerFiles = entries.contains("vocab.json") && entries.contains("merges.txt")
                    ? .vocabularyAndMerges(vocabulary: file("vocab.json"), merges: file("merges.txt")) : nil
            } else if config.has("architecture") {
                family = .timm
                let parsed = try TimmViTConfig(config)
                (vision, text, preprocessing, mapping) = (parsed.vision, nil, parsed.preprocessing, parsed.mapping)
                weightsPath = try weights(preferred: ["model.safetensors"])
                textNormalization = .openCLIP
                tokenizerFiles = nil
            } else {
                throw ImportFileError(path: file("config.json"), reason: "neither a transformers CLIP config "
                                      + "(vision_config/text_config) nor a timm config (architecture)")
            }
        } else {
            throw ImportFileError(path: directory, reason: "no open_clip_config.json, config.json or CONCH config "
                                  + "(conch_ViT-B-16.json): cannot tell the model family (supported: transformers "
                                  + "CLIPModel, open_clip, timm ViT, CONCH image tower)")
        }
    }

    /// The tokenizer of the text tower (context length from the text config).
    public func makeTokenizer() throws -> any PretrainedTokenizer {
        guard let text else { throw ImportFileError(path: directory, reason: "this \(family.rawValue) model has no text tower") }
        let tokenizer: any PretrainedTokenizer
        switch tokenizerFiles {
        case .byteLevelBPEJSON(let path)?:
            tokenizer = try ByteLevelBPETokenizer(json: path, contextLength: text.contextLength)
        case .vocabularyAndMerges(let v, let m)?:
            tokenizer = try CLIPTokenizer(vocabularyJSON: v, mergesFile: m, normalization: textNormalization,
                                          contextLength: text.contextLength)
        case .bpeGzip(let path)?:
            tokenizer = try CLIPTokenizer(bpeGzip: path, normalization: textNormalization,
                                          contextLength: text.contextLength)
        case nil:
            throw ImportFileError(path: directory, reason: family == .conch
                ? "no tokenizer file: copy CONCH's conch_byte_level_bpe_uncased.json (conch/open_clip_custom/tokenizers/) "
                    + "into the folder"
                : "no tokenizer files (vocab.json + merges.txt, or a BPE .txt.gz such as open_clip's "
                    + "bpe_simple_vocab_16e6.txt.gz)")
        }
        guard tokenizer.vocabularySize <= text.vocabularySize else {
            throw ImportFileError(path: directory, reason: "the tokenizer has \(tokenizer.vocabularySize) ids but the "
                                  + "text tower only \(text.vocabularySize) embeddings")
        }
        guard tokenizer.endOfTextId == text.endOfTextId else {
            throw ImportFileError(path: directory, reason: "the tokenizer's end-of-text id \(tokenizer.endOfTextId) "
                                  + "is not the id the text tower pools at (\(text.endOfTextId))")
        }
        return tokenizer
    }

    /// Internal parameter names of the complete model (both towers, no LoRA).
    public var parameterNames: [String] {
        let store = ParameterStore()
        if let vision { _ = VisionTransformer(config: vision, training: .frozen, store: store) }
        if let text { _ = TextTransformer(config: text, training: .frozen, store: store) }
        return store.parameters.map(\.name)
    }

    /// Opens the weights file.
    public func openWeights() throws -> SafeTensorsFile { try SafeTensorsFile(path: weightsPath) }

    /// Fills the towers declared in `store` under the contract prefixes (`vision.`, `text.`)
    /// from the weights file. LoRA factors keep their initial values; every other parameter
    /// must come from the file, and every file tensor must be used or known to be irrelevant.
    @discardableResult
    public func importWeights(into store: ParameterStore, vision loadVision: Bool, text loadText: Bool,
                              file: SafeTensorsFile? = nil) throws -> ImportReport {
        let weights = try file ?? openWeights()
        var prefixes: [String] = []
        if loadVision { prefixes.append("vision.") }
        if loadText { prefixes.append("text.") }
        return try store.importWeights(from: weights, family: family.rawValue, mapping: mapping,
                                       prefixes: prefixes, allNames: parameterNames)
    }
}

// MARK: - Shared helpers

func activation(_ name: String, _ config: JSONConfig) throws -> Activation {
    switch name {
    case "quick_gelu": return .quickGELU
    case "gelu": return .gelu
    case "gelu_new", "gelu_pytorch_tanh", "gelu_fast": return .geluTanh
    default: throw config.error("activation '\(name)' is not supported (quick_gelu, gelu, gelu_new)")
    }
}

/// "blocks.3.attn.qkv.weight" → (3, "attn.qkv.weight").
func splitIndexed(_ name: Substring, after head: String) -> (Int, String)? {
    guard name.hasPrefix(head) else { return nil }
    let rest = name.dropFirst(head.count)
    guard let dot = rest.firstIndex(of: "."), let i = Int(rest[..<dot]) else { return nil }
    return (i, String(rest[rest.index(after: dot)...]))
}

func preprocessingFilter(_ name: String?, _ config: JSONConfig) throws -> ResizeFilter {
    switch name ?? "bicubic" {
    case "bicubic": return .bicubic
    case "bilinear": return .bilinear
    case let other: throw config.error("interpolation '\(other)' is not supported (bicubic, bilinear)")
    }
}

// MARK: - transformers CLIPModel

struct HFCLIPConfig {
    var vision: VisionConfig?
    var text: TextConfig?
    var preprocessing: ImagePreprocessing?
    var mapping: WeightMapping

    init(_ config: JSONConfig, preprocessorPath: String?) throws {
        let projection = try config.int("projection_dim", default: 512)
        if let v = try config.object("vision_config") {
            vision = VisionConfig(
                imageSize: try v.int("image_size", default: 224), patchSize: try v.int("patch_size", default: 32),
                channels: try v.int("num_channels", default: 3),
                width: try v.int("hidden_size", default: 768), depth: try v.int("num_hidden_layers", default: 12),
                heads: try v.int("num_attention_heads", default: 12),
                mlpHidden: try v.int("intermediate_size", default: 3072),
                activation: try activation(try v.string("hidden_act") ?? "quick_gelu", v),
                layerNormEps: Float(try v.double("layer_norm_eps", default: 1e-5)),
                layerScaleInit: nil, preNorm: true, pooling: .cls, projectionDim: projection, patchBias: false)
        }
        if let t = try config.object("text_config") {
            let vocabulary = try t.int("vocab_size", default: 49408)
            // transformers pools at argmax(ids) for the legacy eos_token_id 2, which is the
            // first end-of-text token when that token has the largest id (CLIP's vocabulary).
            let eos = try t.int("eos_token_id", default: 49407)
            text = TextConfig(
                vocabularySize: vocabulary, contextLength: try t.int("max_position_embeddings", default: 77),
                width: try t.int("hidden_size", default: 512), depth: try t.int("num_hidden_layers", default: 12),
                heads: try t.int("num_attention_heads", default: 8),
                mlpHidden: try t.int("intermediate_size", default: 2048),
                activation: try activation(try t.string("hidden_act") ?? "quick_gelu", t),
                layerNormEps: Float(try t.double("layer_norm_eps", default: 1e-5)), projectionDim: projection,
                endOfTextId: Int32(eos == 2 ? vocabulary - 1 : eos))
        }
        if vision != nil {
            var pre = ImagePreprocessing.clip(size: vision!.imageSize)
            if let path = preprocessorPath {
                let p = try JSONConfig(path: path)
                var short = vision!.imageSize, crop = vision!.imageSize
                if let size = try p.object("size") { short = try size.int("shortest_edge", default: short) }
                else if let s = try p.int("size") { short = s }
                if let c = try p.object("crop_size") { crop = try c.int("height", default: crop) }
                else if let c = try p.int("crop_size") { crop = c }
                let resample = try p.int("resample", default: 3)
                guard resample == 3 || resample == 2 else {
                    throw p.error("'resample' \(resample) is not supported (3 = bicubic, 2 = bilinear)")
                }
                pre = ImagePreprocessing(resizeShortSide: short, cropSize: crop,
                                         filter: resample == 3 ? .bicubic : .bilinear,
                                         mean: try p.floats("image_mean") ?? ImagePreprocessing.openAIMean,
                                         std: try p.floats("image_std") ?? ImagePreprocessing.openAIStd)
            }
            preprocessing = pre
        }
        mapping = WeightMapping(source: HFCLIPConfig.source, ignore: { key in
            key == "logit_scale" || key.hasSuffix("embeddings.position_ids")
        })
    }

    static func source(_ name: String) -> TensorSource? {
        if name.hasPrefix("text.") {
            let rest = name.dropFirst("text.".count)
            return .tensor(rest == "text_projection.weight" ? String(rest) : "text_model." + rest)
        }
        guard name.hasPrefix("vision.") else { return nil }
        let rest = name.dropFirst("vision.".count), v = "vision_model."
        switch rest {
        case "cls_token": return .tensor(v + "embeddings.class_embedding")
        case "pos_embed": return .tensor(v + "embeddings.position_embedding.weight")
        case "patch_embed.proj.weight": return .tensor(v + "embeddings.patch_embedding.weight")
        case "norm_pre.weight", "norm_pre.bias": return .tensor(v + "pre_layrnorm." + rest.split(separator: ".")[1])
        case "norm.weight", "norm.bias": return .tensor(v + "post_layernorm." + rest.split(separator: ".")[1])
        case "head.weight": return .tensor("visual_projection.weight")
        default: break
        }
        guard let (i, tail) = splitIndexed(rest, after: "blocks.") else { return nil }
        let layer = v + "encoder.layers.\(i)."
        switch tail {
        case "attn.qkv.weight", "attn.qkv.bias":
            let kind = tail.hasSuffix("weight") ? "weight" : "bias"
            return .concatenated(["q", "k", "v"].map { layer + "self_attn.\($0)_proj.\(kind)" })
        default:
            let renames = [("norm1.", "layer_norm1."), ("norm2.", "layer_norm2."), ("attn.proj.", "self_attn.out_proj."),
                           ("mlp.fc1.", "mlp.fc1."), ("mlp.fc2.", "mlp.fc2.")]
            for (ours, theirs) in renames where tail.hasPrefix(ours) {
                return .tensor(layer + theirs + tail.dropFirst(ours.count))
            }
            return nil
        }
    }
}

// MARK: - open_clip

struct OpenCLIPConfig {
    var vision: VisionConfig?
    var text: TextConfig?
    var preprocessing: ImagePreprocessing?
    var mapping: WeightMapping

    init(path: String) throws {
        let root = try JSONConfig(path: path)
        let model = try root.object("model_cfg") ?? root
        let embed = try model.int("embed_dim")
        let quickGELU = try model.bool("quick_gelu", default: false)
        let act: Activation = quickGELU ? .quickGELU : .gelu
        var problems: [String] = []
        func reject(_ cfg: JSONConfig, _ keys: [String]) throws {
            for k in keys where try cfg.bool(k, default: false) { problems.append("'\(cfg.scope).\(k)' is not supported") }
        }
        if let v = try model.object("vision_cfg") {
            if v.has("timm_model_name") { problems.append("'vision_cfg.timm_model_name' (a timm trunk) is not supported") }
            if let layers = v.object["layers"], !(layers is NSNumber) {
                problems.append("'vision_cfg.layers' \(layers) describes a ResNet, not a ViT")
            }
            try reject(v, ["attentional_pool", "final_ln_after_pool", "qk_norm", "scaled_cosine_attn", "scale_heads",
                           "scale_attn_inner", "scale_attn", "scale_fc"])
            let width = try v.int("width", default: 768), headWidth = try v.int("head_width", default: 64)
            let pool = try v.string("pool_type") ?? "tok"
            if pool != "tok" && pool != "avg" { problems.append("'vision_cfg.pool_type' '\(pool)' is not supported (tok, avg)") }
            if let pe = try v.string("pos_embed_type"), pe != "learnable" {
                problems.append("'vision_cfg.pos_embed_type' '\(pe)' is not supported (learnable)")
            }
            let eps = try v.object("norm_kwargs")?.double("eps") ?? 1e-5
            vision = VisionConfig(
                imageSize: try v.squareSize("image_size") ?? 224, patchSize: try v.int("patch_size", default: 16),
                width: width, depth: (try? v.int("layers", default: 12)) ?? 12, heads: max(1, width / headWidth),
                mlpHidden: Int(Double(width) * (try v.double("mlp_ratio", default: 4))),
                activation: act, layerNormEps: Float(eps),
                layerScaleInit: try v.double("ls_init_value").map(Float.init),
                preNorm: !(try v.bool("no_ln_pre", default: false)), pooling: pool == "avg" ? .mean : .cls,
                projectionDim: embed, patchBias: false)
        }
        if let t = try model.object("text_cfg") {
            if t.has("hf_model_name") { problems.append("'text_cfg.hf_model_name' (a Hugging Face text trunk) is not supported") }
            try reject(t, ["embed_cls", "no_causal_mask", "proj_bias", "qk_norm", "scaled_cosine_attn", "scale_heads",
                           "scale_attn_inner", "scale_attn", "scale_fc"])
            if t.has("ls_init_value") { problems.append("'text_cfg.ls_init_value' (LayerScale in the text tower) is not supported") }
            let vocabulary = try t.int("vocab_size", default: 49408)
            let pool = try t.string("pool_type") ?? "argmax"
            var endOfText = vocabulary - 1         // argmax(ids): the end-of-text id is the largest
            switch pool {
            case "argmax": break
            case "eos": endOfText = try t.int("eos_id", default: 2)
            default: problems.append("'text_cfg.pool_type' '\(pool)' is not supported (argmax, eos)")
            }
            let width = try t.int("width", default: 512)
            let projType = try t.string("proj_type") ?? "linear"
            if projType != "linear" && projType != "none" { problems.append("'text_cfg.proj_type' '\(projType)' is not supported") }
            text = TextConfig(
                vocabularySize: vocabulary, contextLength: try t.int("context_length", default: 77), width: width,
                depth: try t.int("layers", default: 12), heads: try t.int("heads", default: 8),
                mlpHidden: Int(Double(width) * (try t.double("mlp_ratio", default: 4))), activation: act,
                layerNormEps: Float(try t.object("norm_kwargs")?.double("eps") ?? 1e-5),
                projectionDim: projType == "none" ? nil : embed, endOfTextId: Int32(endOfText))
        }
        if embed == nil { problems.append("'model_cfg.embed_dim' is missing") }
        guard problems.isEmpty else {
            throw ImportFileError(path: path, reason: "unsupported open_clip architecture: " + problems.joined(separator: "; "))
        }
        if let vision {
            let p = try root.object("preprocess_cfg")
            let size = try p?.squareSize("size") ?? vision.imageSize
            if let mode = try p?.string("resize_mode"), mode != "shortest" {
                throw p!.error("'preprocess_cfg.resize_mode' '\(mode)' is not supported (shortest)")
            }
            preprocessing = ImagePreprocessing(
                resizeShortSide: size, cropSize: size,
                filter: try preprocessingFilter(try p?.string("interpolation"), p ?? root),
                mean: try p?.floats("mean") ?? ImagePreprocessing.openAIMean,
                std: try p?.floats("std") ?? ImagePreprocessing.openAIStd)
        }
        let textPrefix = try model.bool("custom_text", default: false) ? "text." : ""
        mapping = WeightMapping(source: { OpenCLIPConfig.source($0, textPrefix: textPrefix) },
                                ignore: { $0 == "logit_scale" || $0.hasSuffix("attn_mask") })
    }

    static func block(_ tail: String) -> String? {
        let renames = [("norm1.", "ln_1."), ("norm2.", "ln_2."), ("layer_norm1.", "ln_1."), ("layer_norm2.", "ln_2."),
                       ("attn.proj.", "attn.out_proj."), ("self_attn.out_proj.", "attn.out_proj."),
                       ("mlp.fc1.", "mlp.c_fc."), ("mlp.fc2.", "mlp.c_proj."),
                       ("ls1.gamma", "ls_1.gamma"), ("ls2.gamma", "ls_2.gamma")]
        for (ours, theirs) in renames where tail.hasPrefix(ours) { return theirs + tail.dropFirst(ours.count) }
        return nil
    }

    static func source(_ name: String, textPrefix: String) -> TensorSource? {
        if name.hasPrefix("vision.") {
            let rest = name.dropFirst("vision.".count), v = "visual."
            switch rest {
            case "cls_token": return .tensor(v + "class_embedding")
            case "pos_embed": return .tensor(v + "positional_embedding")
            case "patch_embed.proj.weight": return .tensor(v + "conv1.weight")
            case "norm_pre.weight", "norm_pre.bias": return .tensor(v + "ln_pre." + rest.split(separator: ".")[1])
            case "norm.weight", "norm.bias": return .tensor(v + "ln_post." + rest.split(separator: ".")[1])
            case "head.weight": return .transposed(v + "proj")
            default: break
            }
            guard let (i, tail) = splitIndexed(rest, after: "blocks.") else { return nil }
            let layer = v + "transformer.resblocks.\(i)."
            if tail == "attn.qkv.weight" { return .tensor(layer + "attn.in_proj_weight") }
            if tail == "attn.qkv.bias" { return .tensor(layer + "attn.in_proj_bias") }
            return block(tail).map { .tensor(layer + $0) }
        }
        guard name.hasPrefix("text.") else { return nil }
        let rest = name.dropFirst("text.".count), t = textPrefix
        switch rest {
        case "embeddings.token_embedding.weight": return .tensor(t + "token_embedding.weight")
        case "embeddings.position_embedding.weight": return .tensor(t + "positional_embedding")
        case "final_layer_norm.weight", "final_layer_norm.bias": return .tensor(t + "ln_final." + rest.split(separator: ".")[1])
        case "text_projection.weight": return .transposed(t + "text_projection")
        default: break
        }
        guard let (i, tail) = splitIndexed(rest, after: "encoder.layers.") else { return nil }
        let layer = t + "transformer.resblocks.\(i)."
        for (part, letter) in ["q", "k", "v"].enumerated() {
            if tail == "self_attn.\(letter)_proj.weight" { return .slice(layer + "attn.in_proj_weight", part: part, parts: 3) }
            if tail == "self_attn.\(letter)_proj.bias" { return .slice(layer + "attn.in_proj_bias", part: part, parts: 3) }
        }
        return block(tail).map { .tensor(layer + $0) }
    }
}

// MARK: - timm ViT

/// What a timm ViT architecture name fixes before `model_args`: the registered defaults of
/// `vit_{size}_patch{P}[_{resolution}][_reg{R}][_dinov2]` (timm's `vision_transformer.py`).
struct TimmArchitecture {
    var width: Int
    var depth: Int
    var heads: Int
    var patch: Int
    /// The resolution in the name (`…_224`); nil for DINOv2 names.
    var resolution: Int?
    var registerTokens = 0
    var noEmbedClass = false
    var layerScale: Double?

    /// timm's size names: (width, depth, heads).
    static let sizes: [String: (Int, Int, Int)] = [
        "tiny": (192, 12, 3), "small": (384, 12, 6), "base": (768, 12, 12), "large": (1024, 24, 16),
        "huge": (1280, 32, 16),
    ]

    /// Parses a name such as `vit_base_patch16_224.augreg_in21k` or `vit_large_patch14_reg4_dinov2`
    /// (the tag after "." is ignored); nil for anything else.
    init?(_ architecture: String) {
        let base = architecture.split(separator: ".").first.map(String.init) ?? architecture
        let parts = base.split(separator: "_").map(String.init)
        guard parts.count >= 3, parts[0] == "vit", let size = Self.sizes[parts[1]], parts[2].hasPrefix("patch"),
              let patch = Int(parts[2].dropFirst(5)) else { return nil }
        (width, depth, heads, self.patch) = (size.0, size.1, size.2, patch)
        var dinov2 = false
        for part in parts.dropFirst(3) {
            if let r = Int(part), resolution == nil, registerTokens == 0, !dinov2 { resolution = r }
            else if part.hasPrefix("reg"), let r = Int(part.dropFirst(3)), r > 0, registerTokens == 0 { registerTokens = r }
            else if part == "dinov2", !dinov2 { dinov2 = true }
            else { return nil }
        }
        if dinov2 {   // vit_*_patch14_dinov2: LayerScale 1e-5; with registers also no_embed_class
            layerScale = 1e-5
            noEmbedClass = registerTokens > 0
        } else if registerTokens > 0 {
            return nil   // vit_*_reg*_gap_*, …: average pooling without a class token, not supported
        }
        if resolution == nil && !dinov2 { return nil }
    }
}

struct TimmViTConfig {
    var vision: VisionConfig
    var preprocessing: ImagePreprocessing
    var mapping: WeightMapping

    /// The architecture comes from the name's registered defaults overridden by `model_args`.
    /// The tower is built for the evaluation crop (`pretrained_cfg.input_size`, else `img_size`);
    /// when its patch grid differs from the checkpoint's `pos_embed` grid, the position
    /// embedding is resampled on import exactly as timm's `dynamic_img_size` does at every
    /// forward (`resample_abs_pos_embed`: bicubic, antialiased).
    init(_ config: JSONConfig) throws {
        let architecture = try config.string("architecture")!
        guard let arch = TimmArchitecture(architecture) else {
            throw config.error("timm architecture '\(architecture)' is not supported: expected "
                               + "vit_{tiny,small,base,large,huge}_patch{P}_{resolution} or "
                               + "vit_{small,base,large}_patch14[_reg{R}]_dinov2 (CLIP, SigLIP, giant/SwiGLU "
                               + "and average-pooled register variants are not)")
        }
        let args = try config.object("model_args") ?? JSONConfig(path: config.path, scope: "model_args", object: [:])
        var problems: [String] = []
        if try !args.bool("class_token", default: true) { problems.append("class_token=False") }
        if try !args.bool("qkv_bias", default: true) { problems.append("qkv_bias=False") }
        if try args.bool("fc_norm", default: false) { problems.append("fc_norm=True") }
        if try args.bool("qk_norm", default: false) { problems.append("qk_norm=True") }
        if try args.bool("dynamic_img_pad", default: false) { problems.append("dynamic_img_pad=True") }
        if try !args.bool("proj_bias", default: true) { problems.append("proj_bias=False") }
        for key in ["scale_attn_norm", "scale_mlp_norm", "pool_include_prefix"] where try args.bool(key, default: false) {
            problems.append("\(key)=True")
        }
        if args.has("embed_norm_layer") { problems.append("embed_norm_layer") }
        if let act = try args.string("act_layer"), act != "gelu" { problems.append("act_layer='\(act)'") }
        if let mlp = try args.string("mlp_layer"), mlp != "mlp" && mlp != "Mlp" { problems.append("mlp_layer='\(mlp)'") }
        if let pe = try args.string("pos_embed"), pe != "learn" { problems.append("pos_embed='\(pe)'") }
        let pool = try args.string("global_pool") ?? config.string("global_pool") ?? "token"
        if pool != "token" { problems.append("global_pool='\(pool)' (only 'token': timm's 'avg' applies fc_norm after pooling)") }
        guard problems.isEmpty else {
            throw config.error("unsupported timm ViT options: " + problems.joined(separator: ", "))
        }
        let p = try config.object("pretrained_cfg") ?? JSONConfig(path: config.path, scope: "pretrained_cfg", object: [:])
        let input = try p.ints("input_size")
        // timm's builder fills img_size from pretrained_cfg.input_size (ViTs have a fixed input size).
        let checkpointSize = try args.squareSize("img_size") ?? input.map { $0[$0.count - 1] } ?? arch.resolution ?? 224
        let crop = input.map { $0[$0.count - 1] } ?? checkpointSize
        let width = try args.int("embed_dim", default: arch.width)
        let patch = try args.int("patch_size", default: arch.patch)
        guard crop % patch == 0 else {
            throw p.error("the input size \(crop) is not a multiple of the patch size \(patch) "
                          + "(dynamic_img_pad is not supported): set 'pretrained_cfg.input_size' to a multiple")
        }
        vision = VisionConfig(
            imageSize: crop, patchSize: patch,
            width: width, depth: try args.int("depth", default: arch.depth), heads: try args.int("num_heads", default: arch.heads),
            mlpHidden: Int(Double(width) * (try args.double("mlp_ratio", default: 4))), activation: .gelu,
            layerNormEps: 1e-6, layerScaleInit: (try args.double("init_values") ?? arch.layerScale).map(Float.init),
            preNorm: try args.bool("pre_norm", default: false), finalNorm: try args.bool("final_norm", default: true),
            pooling: .cls, projectionDim: nil, patchBias: true, registerTokens: try args.int("reg_tokens", default: arch.registerTokens),
            noEmbedClass: try args.bool("no_embed_class", default: arch.noEmbedClass))
        if let mode = try p.string("crop_mode"), mode != "center" {
            throw p.error("'pretrained_cfg.crop_mode' '\(mode)' is not supported (center)")
        }
        preprocessing = .timm(size: crop, cropPct: try p.double("crop_pct", default: 0.875),
                              filter: try preprocessingFilter(try p.string("interpolation"), p),
                              mean: try p.floats("mean") ?? ImagePreprocessing.imageNetMean,
                              std: try p.floats("std") ?? ImagePreprocessing.imageNetStd)
        let v = vision
        mapping = WeightMapping(source: { name in
            guard name.hasPrefix("vision.") else { return nil }
            let rest = String(name.dropFirst("vision.".count))
            return rest == "pos_embed"
                ? .resampledGrid(rest, prefixRows: v.positionPrefixRows, mode: .bicubicAntialiased)
                : .tensor(rest)
        }, ignore: { $0.hasPrefix("head.") || $0 == "mask_token" })   // ImageNet classifier; DINOv2's training-only mask token
    }
}
