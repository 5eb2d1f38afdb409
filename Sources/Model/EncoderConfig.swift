import Kernels

/// How a ViT turns its token sequence into one feature vector.
public enum VisionPooling: String, NamedChoice {
    /// The class token (timm `global_pool='token'`, CLIP).
    case cls
    /// Mean of the patch tokens after the final norm. Note: timm's `global_pool='avg'`
    /// instead applies `fc_norm` after pooling; this tower applies `norm` to every token.
    case mean
    /// One learned query attends to every normed token (CoCa / CONCH `attn_pool_contrast`),
    /// then `attn_pool_norm`; configured by `VisionConfig.attentionalPooling`.
    case attentional
}

/// The attentional pooler of `VisionPooling.attentional` (CONCH: width 512, 8 heads, eps 1e-5).
public struct AttentionalPoolingConfig: Codable, Equatable, Sendable {
    /// d, the pooler's width (its queries, projections and output).
    public var width: Int
    public var heads: Int
    /// eps of `ln_q`, `ln_k` and the norm after pooling.
    public var layerNormEps: Float

    public init(width: Int, heads: Int, layerNormEps: Float) {
        self.width = width
        self.heads = heads
        self.layerNormEps = layerNormEps
    }
}

/// Architecture of a ViT image tower (timm `VisionTransformer` names).
public struct VisionConfig: Codable, Equatable, Sendable {
    public var imageSize: Int
    public var patchSize: Int
    public var channels: Int = 3
    public var width: Int
    public var depth: Int
    public var heads: Int
    public var mlpHidden: Int
    public var activation: Activation
    public var layerNormEps: Float
    /// LayerScale initial value (`ls1.gamma`, `ls2.gamma`); nil: no LayerScale.
    public var layerScaleInit: Float?
    /// LayerNorm after the position embedding (`norm_pre`, CLIP's `ln_pre`).
    public var preNorm: Bool
    /// Final LayerNorm (`norm`).
    public var finalNorm: Bool = true
    public var pooling: VisionPooling
    /// Output projection `head.weight (Dp, E)` without bias; nil: features are E-wide.
    public var projectionDim: Int?
    /// Whether the patch-embedding Conv2d has a bias (CLIP: no).
    public var patchBias: Bool
    public var qkvLayout: QKVLayout = .fused
    public var naming: BlockNaming = .timm
    /// Register tokens (timm `reg_tokens`, DINOv2 "with registers"): `reg_token (1, R, E)`,
    /// placed after the class token, attended to like any token, never pooled.
    public var registerTokens: Int = 0
    /// timm `no_embed_class`: `pos_embed (1, N, E)` is added to the patch tokens only; the
    /// class and register tokens get none. Otherwise `pos_embed (1, 1 + R + N, E)` covers all.
    public var noEmbedClass: Bool = false
    /// The pooler of `pooling == .attentional` (nil otherwise).
    public var attentionalPooling: AttentionalPoolingConfig? = nil

    public init(imageSize: Int, patchSize: Int, channels: Int = 3, width: Int, depth: Int,
                heads: Int, mlpHidden: Int, activation: Activation, layerNormEps: Float,
                layerScaleInit: Float?, preNorm: Bool, finalNorm: Bool = true,
                pooling: VisionPooling, projectionDim: Int?, patchBias: Bool,
                qkvLayout: QKVLayout = .fused, naming: BlockNaming = .timm,
                registerTokens: Int = 0, noEmbedClass: Bool = false,
                attentionalPooling: AttentionalPoolingConfig? = nil) {
        self.imageSize = imageSize
        self.patchSize = patchSize
        self.channels = channels
        self.width = width
        self.depth = depth
        self.heads = heads
        self.mlpHidden = mlpHidden
        self.activation = activation
        self.layerNormEps = layerNormEps
        self.layerScaleInit = layerScaleInit
        self.preNorm = preNorm
        self.finalNorm = finalNorm
        self.pooling = pooling
        self.projectionDim = projectionDim
        self.patchBias = patchBias
        self.qkvLayout = qkvLayout
        self.naming = naming
        self.registerTokens = registerTokens
        self.noEmbedClass = noEmbedClass
        self.attentionalPooling = attentionalPooling
        precondition((pooling == .attentional) == (attentionalPooling != nil),
                     "VisionConfig: pooling 'attentional' and attentionalPooling go together")
    }

    /// Patches per side and in total at `imageSize`.
    public var gridSize: Int { imageSize / patchSize }
    public var patchCount: Int { gridSize * gridSize }
    /// Tokens before the patches: the class token and the register tokens (timm
    /// `num_prefix_tokens`).
    public var prefixTokens: Int { 1 + registerTokens }
    /// Tokens per image (class token + register tokens + patches).
    public var tokens: Int { prefixTokens + patchCount }
    /// Leading rows of `pos_embed` that belong to prefix tokens (0 with `noEmbedClass`).
    public var positionPrefixRows: Int { noEmbedClass ? 0 : prefixTokens }
    /// Rows of `pos_embed`: the prefix rows and one per patch.
    public var positionRows: Int { positionPrefixRows + patchCount }
    /// Width of the pooled features before the projection (the pooler's width with attentional pooling).
    public var pooledWidth: Int { attentionalPooling?.width ?? width }
    /// Width of the pooled output.
    public var outputDim: Int { projectionDim ?? pooledWidth }

    /// The tiny test tower of docs/model-contract.md (timm `VisionTransformer(img_size=16,
    /// patch_size=8, embed_dim=32, depth=2, num_heads=4, mlp_ratio=2, init_values=0.1)`).
    public static let tiny = VisionConfig(
        imageSize: 16, patchSize: 8, width: 32, depth: 2, heads: 4, mlpHidden: 64,
        activation: .gelu, layerNormEps: 1e-6, layerScaleInit: 0.1, preNorm: false,
        pooling: .cls, projectionDim: nil, patchBias: true)

    /// timm ViT-S/16 (kaiko S/16): 384 wide, 12 blocks, 6 heads.
    public static let vitS16 = timmViT(patch: 16, width: 384, depth: 12, heads: 6, mlp: 1536)
    /// timm ViT-S/8.
    public static let vitS8 = timmViT(patch: 8, width: 384, depth: 12, heads: 6, mlp: 1536)
    /// timm ViT-B/16.
    public static let vitB16 = timmViT(patch: 16, width: 768, depth: 12, heads: 12, mlp: 3072)
    /// timm ViT-B/8.
    public static let vitB8 = timmViT(patch: 8, width: 768, depth: 12, heads: 12, mlp: 3072)
    /// ViT-L/16 with LayerScale 1e-5, as UNI (`vit_large_patch16_224, init_values=1e-5`).
    public static let vitL16 = timmViT(patch: 16, width: 1024, depth: 24, heads: 16, mlp: 4096,
                                       layerScale: 1e-5)
    /// OpenAI CLIP ViT-B/32 image tower (timm `vit_base_patch32_clip_224`): pre-norm,
    /// QuickGELU, eps 1e-5, no patch bias, 512-d projection.
    public static let clipB32 = clipViT(patch: 32)
    /// OpenAI CLIP ViT-B/16 image tower.
    public static let clipB16 = clipViT(patch: 16)

    static func timmViT(patch: Int, width: Int, depth: Int, heads: Int, mlp: Int,
                        layerScale: Float? = nil) -> VisionConfig {
        VisionConfig(imageSize: 224, patchSize: patch, width: width, depth: depth, heads: heads,
                     mlpHidden: mlp, activation: .gelu, layerNormEps: 1e-6,
                     layerScaleInit: layerScale, preNorm: false, pooling: .cls,
                     projectionDim: nil, patchBias: true)
    }

    static func clipViT(patch: Int) -> VisionConfig {
        VisionConfig(imageSize: 224, patchSize: patch, width: 768, depth: 12, heads: 12,
                     mlpHidden: 3072, activation: .quickGELU, layerNormEps: 1e-5,
                     layerScaleInit: nil, preNorm: true, pooling: .cls, projectionDim: 512,
                     patchBias: false)
    }
}

extension VisionConfig {
    /// Decodes a configuration; the keys with defaults (`channels`, `finalNorm`, `qkvLayout`,
    /// `naming`, `registerTokens`, `noEmbedClass`, `attentionalPooling`) may be absent, so configurations written
    /// before a key existed (checkpoints, retriever exports) still read.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let pooling = try c.decode(VisionPooling.self, forKey: .pooling)
        let attentionalPooling = try c.decodeIfPresent(AttentionalPoolingConfig.self, forKey: .attentionalPooling)
        guard (pooling == .attentional) == (attentionalPooling != nil) else {
            throw DecodingError.dataCorruptedError(
                forKey: .pooling, in: c, debugDescription: "pooling 'attentional' needs attentional_pooling "
                    + "(width, heads, layer_norm_eps) and attentional_pooling needs pooling 'attentional'")
        }
        self.init(imageSize: try c.decode(Int.self, forKey: .imageSize),
                  patchSize: try c.decode(Int.self, forKey: .patchSize),
                  channels: try c.decodeIfPresent(Int.self, forKey: .channels) ?? 3,
                  width: try c.decode(Int.self, forKey: .width), depth: try c.decode(Int.self, forKey: .depth),
                  heads: try c.decode(Int.self, forKey: .heads), mlpHidden: try c.decode(Int.self, forKey: .mlpHidden),
                  activation: try c.decode(Activation.self, forKey: .activation),
                  layerNormEps: try c.decode(Float.self, forKey: .layerNormEps),
                  layerScaleInit: try c.decodeIfPresent(Float.self, forKey: .layerScaleInit),
                  preNorm: try c.decode(Bool.self, forKey: .preNorm),
                  finalNorm: try c.decodeIfPresent(Bool.self, forKey: .finalNorm) ?? true,
                  pooling: pooling,
                  projectionDim: try c.decodeIfPresent(Int.self, forKey: .projectionDim),
                  patchBias: try c.decode(Bool.self, forKey: .patchBias),
                  qkvLayout: try c.decodeIfPresent(QKVLayout.self, forKey: .qkvLayout) ?? .fused,
                  naming: try c.decodeIfPresent(BlockNaming.self, forKey: .naming) ?? .timm,
                  registerTokens: try c.decodeIfPresent(Int.self, forKey: .registerTokens) ?? 0,
                  noEmbedClass: try c.decodeIfPresent(Bool.self, forKey: .noEmbedClass) ?? false,
                  attentionalPooling: attentionalPooling)
    }
}

/// Architecture of a CLIP text tower (HF `CLIPTextModelWithProjection` names).
public struct TextConfig: Codable, Equatable, Sendable {
    public var vocabularySize: Int
    public var contextLength: Int
    public var width: Int
    public var depth: Int
    public var heads: Int
    public var mlpHidden: Int
    public var activation: Activation
    public var layerNormEps: Float
    /// `text_projection.weight (Dp, D)` without bias; nil: features are D-wide.
    public var projectionDim: Int?
    /// The end-of-text id; each sequence is pooled at its first occurrence (or at the last
    /// position when a sequence has none).
    public var endOfTextId: Int32
    /// Also mask the keys after the first end-of-text token (CLIP does not: the causal
    /// mask already keeps padding out of every position up to the end-of-text token).
    public var keyPaddingAfterEndOfText: Bool = false
    public var qkvLayout: QKVLayout = .separate
    public var naming: BlockNaming = .hfCLIP
    /// CoCa / CONCH text: a learned `embeddings.class_embedding (D)` is appended after the
    /// `contextLength` ids (so `contextLength + 1` positions) and the text is pooled there, not at
    /// the end-of-text token; its row attends to key 0 and to key j ≥ 1 iff id j−1 is not
    /// padding (0) — CONCH's shifted class-token mask — on top of the causal mask.
    public var classEmbedding: Bool = false

    public init(vocabularySize: Int, contextLength: Int, width: Int, depth: Int, heads: Int,
                mlpHidden: Int, activation: Activation, layerNormEps: Float, projectionDim: Int?,
                endOfTextId: Int32, keyPaddingAfterEndOfText: Bool = false,
                qkvLayout: QKVLayout = .separate, naming: BlockNaming = .hfCLIP, classEmbedding: Bool = false) {
        self.vocabularySize = vocabularySize
        self.contextLength = contextLength
        self.width = width
        self.depth = depth
        self.heads = heads
        self.mlpHidden = mlpHidden
        self.activation = activation
        self.layerNormEps = layerNormEps
        self.projectionDim = projectionDim
        self.endOfTextId = endOfTextId
        self.keyPaddingAfterEndOfText = keyPaddingAfterEndOfText
        self.qkvLayout = qkvLayout
        self.naming = naming
        self.classEmbedding = classEmbedding
    }

    public var outputDim: Int { projectionDim ?? width }
    /// Positions per sequence: the ids, plus the class embedding's.
    public var sequenceLength: Int { contextLength + (classEmbedding ? 1 : 0) }

    /// The tiny test tower of docs/model-contract.md.
    public static let tiny = TextConfig(
        vocabularySize: 64, contextLength: 16, width: 32, depth: 2, heads: 4, mlpHidden: 64,
        activation: .quickGELU, layerNormEps: 1e-5, projectionDim: 24, endOfTextId: 63)

    /// OpenAI CLIP text tower (ViT-B/32 and ViT-B/16 CLIP, QuiltNet, PLIP).
    public static let clip = TextConfig(
        vocabularySize: 49408, contextLength: 77, width: 512, depth: 12, heads: 8,
        mlpHidden: 2048, activation: .quickGELU, layerNormEps: 1e-5, projectionDim: 512,
        endOfTextId: 49407)
}

extension TextConfig {
    /// Decodes a configuration; keys with defaults (`keyPaddingAfterEndOfText`, `qkvLayout`,
    /// `naming`, `classEmbedding`) may be absent (configurations written before they existed).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(vocabularySize: try c.decode(Int.self, forKey: .vocabularySize),
                  contextLength: try c.decode(Int.self, forKey: .contextLength),
                  width: try c.decode(Int.self, forKey: .width), depth: try c.decode(Int.self, forKey: .depth),
                  heads: try c.decode(Int.self, forKey: .heads), mlpHidden: try c.decode(Int.self, forKey: .mlpHidden),
                  activation: try c.decode(Activation.self, forKey: .activation),
                  layerNormEps: try c.decode(Float.self, forKey: .layerNormEps),
                  projectionDim: try c.decodeIfPresent(Int.self, forKey: .projectionDim),
                  endOfTextId: try c.decode(Int32.self, forKey: .endOfTextId),
                  keyPaddingAfterEndOfText: try c.decodeIfPresent(Bool.self, forKey: .keyPaddingAfterEndOfText) ?? false,
                  qkvLayout: try c.decodeIfPresent(QKVLayout.self, forKey: .qkvLayout) ?? .separate,
                  naming: try c.decodeIfPresent(BlockNaming.self, forKey: .naming) ?? .hfCLIP,
                  classEmbedding: try c.decodeIfPresent(Bool.self, forKey: .classEmbedding) ?? false)
    }
}

/// Which layers of a tower get LoRA.
public struct LoRATargets: Codable, Equatable, Sendable {
    public enum Linears: String, NamedChoice {
        /// Every Linear of every block (attention projections and MLP).
        case all
        /// The attention projections only (qkv / q,k,v and the output projection).
        case attention
        case none
    }
    public var linears: Linears
    /// The patch-embedding Conv2d (vision towers).
    public var patchEmbedding: Bool
    /// The token embedding (text towers).
    public var tokenEmbedding: Bool
    /// The output projection (`head` / `text_projection`).
    public var projection: Bool

    public init(linears: Linears, patchEmbedding: Bool, tokenEmbedding: Bool, projection: Bool) {
        self.linears = linears
        self.patchEmbedding = patchEmbedding
        self.tokenEmbedding = tokenEmbedding
        self.projection = projection
    }

    /// Every block Linear, the patch embedding and the token embedding, but not the output
    /// projection — what the reference fixtures wrap with PEFT (suffix targets `qkv, proj,
    /// fc1, fc2` / `q_proj, k_proj, v_proj, out_proj, fc1, fc2, token_embedding`).
    public static let all = LoRATargets(linears: .all, patchEmbedding: true, tokenEmbedding: true,
                                        projection: false)
    public static let attentionOnly = LoRATargets(linears: .attention, patchEmbedding: false,
                                                  tokenEmbedding: false, projection: false)
    public static let none = LoRATargets(linears: .none, patchEmbedding: false,
                                         tokenEmbedding: false, projection: false)
}

/// How a tower is trained: LoRA (on `targets`) and/or its base weights.
///
/// - `lora == nil, trainBase == false`: frozen tower (every parameter frozen).
/// - `lora != nil`: the targeted layers get LoRA (their base weights frozen); the other
///   parameters (norms, embeddings, LayerScale, untargeted Linears) are trainable only
///   when `trainBase` is true.
/// - `lora == nil, trainBase == true`: full fine-tuning.
public struct TowerTraining: Codable, Equatable, Sendable {
    public var lora: LoRAConfig?
    public var targets: LoRATargets
    public var trainBase: Bool

    public init(lora: LoRAConfig?, targets: LoRATargets = .all, trainBase: Bool = false) {
        self.lora = lora
        self.targets = targets
        self.trainBase = trainBase
    }

    public static let frozen = TowerTraining(lora: nil, targets: .none, trainBase: false)
    public static let fullFineTune = TowerTraining(lora: nil, targets: .none, trainBase: true)

    /// The region of the non-LoRA parameters.
    public var baseRegion: ParameterRegion { trainBase ? .trainable : .frozen }

    var blockLoRA: BlockLoRA {
        guard let lora else { return BlockLoRA(attention: nil, mlp: nil) }
        switch targets.linears {
        case .all: return BlockLoRA(attention: lora, mlp: lora)
        case .attention: return BlockLoRA(attention: lora, mlp: nil)
        case .none: return BlockLoRA(attention: nil, mlp: nil)
        }
    }
    var patchEmbeddingLoRA: LoRAConfig? { targets.patchEmbedding ? lora : nil }
    var tokenEmbeddingLoRA: LoRAConfig? { targets.tokenEmbedding ? lora : nil }
    var projectionLoRA: LoRAConfig? { targets.projection ? lora : nil }
}
