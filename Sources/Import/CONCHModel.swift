import Datasets
import Foundation
import Model

/// A MahmoodLab CONCH model folder (docs/importing.md, "CONCH"): CONCH's model config
/// (`conch_ViT-B-16.json`) and tokenizer (`conch_byte_level_bpe_uncased.json`), copied from the
/// CONCH repository, beside `model.safetensors` with the keys of the released
/// `pytorch_model.bin` (`reference/convert_conch.py`).
///
/// Image tower: a timm ViT trunk (`visual.trunk.*`, LayerNorm eps 1e-6, final norm over every
/// token), the contrastive attentional pooler (`visual.attn_pool_contrast.*`: one query, the
/// config's `embed_dim` wide, always 8 heads — CONCH ignores `attn_pooler_heads`, eps 1e-5),
/// `visual.ln_contrast` and `visual.proj_contrast (d, embed_dim)` used as `x @ P` — CONCH's
/// `encode_image(x, normalize=False)`.
///
/// Text tower (`text.*`, open_clip names): `text_cfg.context_length` (128) positions of which
/// the last is the appended `cls_emb`, so the tokenizer gives 127 ids (CONCH's `encode_text`
/// drops the 128th placeholder); exact GELU, LayerNorm eps 1e-5, causal mask plus the shifted
/// class-token padding mask, `ln_final` on the class row, `text_projection (width, embed_dim)`
/// used as `x @ P` — CONCH's `encode_text(ids, normalize=False)`. The captioning pooler and the
/// decoder are not used.
struct CONCHConfig {
    var vision: VisionConfig
    var text: TextConfig
    var preprocessing: ImagePreprocessing
    var mapping: WeightMapping

    /// CONCH's attentional pooler always has 8 heads (`_build_vision_tower` never passes
    /// `attn_pooler_heads` on).
    static let poolerHeads = 8

    /// Whether `config` is a CONCH model config: `embed_dim_caption` and an attentional
    /// contrastive pooler in `vision_cfg`.
    static func matches(_ config: JSONConfig) -> Bool {
        guard config.has("embed_dim_caption"), let v = try? config.object("vision_cfg") else { return false }
        return v.has("attentional_pool_contrast")
    }

    init(_ config: JSONConfig) throws {
        let embed = try config.int("embed_dim", default: 512)
        let v = try config.object("vision_cfg") ?? JSONConfig(path: config.path, scope: "vision_cfg", object: [:])
        var problems: [String] = []
        if try !v.bool("attentional_pool_contrast", default: false) {
            problems.append("'vision_cfg.attentional_pool_contrast' must be true")
        }
        if try v.int("n_queries_contrast", default: 1) != 1 { problems.append("'vision_cfg.n_queries_contrast' must be 1") }
        if embed % Self.poolerHeads != 0 { problems.append("'embed_dim' \(embed) is not a multiple of 8 pooler heads") }
        let size = try v.squareSize("image_size") ?? 224, patch = try v.int("patch_size", default: 16)
        if size % patch != 0 { problems.append("'vision_cfg.image_size' \(size) is not a multiple of the patch size \(patch)") }
        guard problems.isEmpty else {
            throw config.error("unsupported CONCH configuration: " + problems.joined(separator: "; "))
        }
        let width = try v.int("width", default: 768)
        vision = VisionConfig(
            imageSize: size, patchSize: patch, width: width, depth: try v.int("layers", default: 12),
            heads: try v.int("num_heads", default: 12),
            mlpHidden: Int(Double(width) * (try v.double("mlp_ratio", default: 4))), activation: .gelu,
            layerNormEps: 1e-6, layerScaleInit: nil, preNorm: false, pooling: .attentional, projectionDim: embed,
            patchBias: true,
            attentionalPooling: AttentionalPoolingConfig(width: embed, heads: Self.poolerHeads, layerNormEps: 1e-5))
        // create_model_from_pretrained: Resize(short side, bicubic), CenterCrop, OpenAI mean/std.
        preprocessing = .clip(size: size)
        let t = try config.object("text_cfg") ?? JSONConfig(path: config.path, scope: "text_cfg", object: [:])
        var textProblems: [String] = []
        if try !t.bool("embed_cls", default: false) { textProblems.append("'text_cfg.embed_cls' must be true") }
        if try t.double("pad_id", default: 0) != 0 { textProblems.append("'text_cfg.pad_id' must be 0") }
        if t.has("ls_init_value") { textProblems.append("'text_cfg.ls_init_value' (LayerScale) is not supported") }
        let textWidth = try t.int("width", default: 768), positions = try t.int("context_length", default: 128)
        if positions < 3 { textProblems.append("'text_cfg.context_length' \(positions) is too short") }
        guard textProblems.isEmpty else {
            throw config.error("unsupported CONCH configuration: " + textProblems.joined(separator: "; "))
        }
        text = TextConfig(
            vocabularySize: try t.int("vocab_size", default: 32007), contextLength: positions - 1, width: textWidth,
            depth: try t.int("layers", default: 12), heads: try t.int("heads", default: 12),
            mlpHidden: Int(Double(textWidth) * (try t.double("mlp_ratio", default: 4))), activation: .gelu,
            layerNormEps: 1e-5, projectionDim: embed, endOfTextId: 2, classEmbedding: true)
        // nn.MultiheadAttention keeps one in_proj_weight when kdim = vdim = embed_dim.
        let fusedInput = embed == width
        mapping = WeightMapping(source: { CONCHConfig.source($0, fusedInput: fusedInput) }, ignore: { key in
            key == "logit_scale" || key.hasPrefix("text_decoder.")
                || key.hasPrefix("visual.attn_pool_caption.") || key.hasPrefix("visual.ln_caption.")
        })
    }

    static func source(_ name: String, fusedInput: Bool) -> TensorSource? {
        if name == "text.embeddings.class_embedding" { return .tensor("text.cls_emb") }
        if name.hasPrefix("text.") { return OpenCLIPConfig.source(name, textPrefix: "text.") }
        guard name.hasPrefix("vision.") else { return nil }
        let rest = String(name.dropFirst("vision.".count))
        let pool = "visual.attn_pool_contrast."
        if rest == "pos_embed" { return .resampledGrid("visual.trunk.pos_embed", prefixRows: 1, mode: .bicubicAntialiased) }
        if rest == "head.weight" { return .transposed("visual.proj_contrast") }
        if rest.hasPrefix("attn_pool_norm.") { return .tensor("visual.ln_contrast." + rest.dropFirst("attn_pool_norm.".count)) }
        if rest.hasPrefix("attn_pool.") {
            let tail = rest.dropFirst("attn_pool.".count)
            for (part, letter) in ["q", "k", "v"].enumerated() {
                if tail == "attn.\(letter)_proj.weight" {
                    return fusedInput ? .slice(pool + "attn.in_proj_weight", part: part, parts: 3)
                        : .tensor(pool + "attn.\(letter)_proj_weight")
                }
                if tail == "attn.\(letter)_proj.bias" { return .slice(pool + "attn.in_proj_bias", part: part, parts: 3) }
            }
            return .tensor(pool + tail)
        }
        return .tensor("visual.trunk." + rest)
    }

    /// CONCH's tokenizer file in a folder: `conch_byte_level_bpe_uncased.json`, else another
    /// `*.json` with "byte_level_bpe" in its name.
    static func tokenizerFile(in directory: String, entries: [String]) -> String? {
        let name = entries.first { $0 == "conch_byte_level_bpe_uncased.json" }
            ?? entries.first { $0.hasSuffix(".json") && $0.contains("byte_level_bpe") }
        return name.map { (directory as NSString).appendingPathComponent($0) }
    }

    /// The CONCH config of a folder: `conch_ViT-B-16.json`, else another small `*.json` that
    /// `matches` (tokenizer files are skipped by size); nil when there is none.
    static func configFile(in directory: String, entries: [String]) -> String? {
        let preferred = "conch_ViT-B-16.json"
        let candidates = (entries.contains(preferred) ? [preferred] : []) + entries.filter {
            $0.hasSuffix(".json") && $0 != preferred && $0 != "config.json" && $0 != "open_clip_config.json"
        }
        for name in candidates {
            let path = (directory as NSString).appendingPathComponent(name)
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? nil
            guard let size, size < 65_536, let config = try? JSONConfig(path: path), matches(config) else { continue }
            return path
        }
        return nil
    }
}
