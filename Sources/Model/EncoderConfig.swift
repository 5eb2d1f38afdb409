import Kernels

/// How a ViT turns its token sequence into one feature vector.
public enum VisionPooling: String, NamedChoice {
    /// The class token (timm `global_pool='token'`, CLIP).
    case cls
    /// Mean of the patch tokens after the final norm. Note: timm's `global_pool='avg'`
    /// instead applies `fc_norm` after pooling; this tower applies `norm` to every token.
    case mean
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

    public init(imageSize: Int, patchSize: Int, channels: Int = 3, width: Int, depth: Int,
                heads: Int, mlpHidden: Int, activation: Activation, layerNormEps: Float,
                layerScaleInit: Float?, preNorm: Bool, finalNorm: Bool = true,
                pooling: VisionPooling, projectionDim: Int?, patchBias: Bool,
                qkvLayout: QKVLayout = .fused, naming: BlockNaming = .timm) {
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
    }

    /// Patches per side and in total at `imageSize`.
    public var gridSize: Int { imageSize / patchSize }
    public var patchCount: Int { gridSize * gridSize }
    /// Tokens per image (class token + patches).
    public var tokens: Int { 1 + patchCount }
    /// Width of the pooled output.
    public var outputDim: Int { projectionDim ?? width }

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

    public init(vocabularySize: Int, contextLength: Int, width: Int, depth: Int, heads: Int,
                mlpHidden: Int, activation: Activation, layerNormEps: Float, projectionDim: Int?,
                endOfTextId: Int32, keyPaddingAfterEndOfText: Bool = false,
                qkvLayout: QKVLayout = .separate, naming: BlockNaming = .hfCLIP) {
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
    }

    public var outputDim: Int { projectionDim ?? width }

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
