import Formats
import Import
import Kernels
import Model
import Retrieval

/// The training methods of `clipit train --method` (CLIP-IT.md: the method, its fair
/// baselines, the text-only classifier of the Ω score and the paper's ablations).
/// docs/training.md has the table of what each one builds.
public enum TrainingMethod: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// Frozen backbone + linear head (the linear probe).
    case unimodal
    /// The same LoRA as CLIP-IT on the backbone + linear head, no text.
    case unimodalLoRA
    /// The method: LoRA on both towers, late fusion, distillation λ·(1 − cos(t̂, t)).
    case clipit
    /// Text tower (LoRA) + linear head on each image's paired report (for Ω).
    case textOnly
    /// CLIP-IT heads and fusion without the distillation term (λ = 0; no text tower).
    case noDistill
    /// No fusion: z = h_v(v); the projection still feeds the distillation term.
    case visionLogitsOnly
    /// The text tower is frozen (no LoRA on text).
    case noTextLoRA
    /// The vision backbone is frozen (no LoRA on vision).
    case noVisionLoRA
    /// One head on the concatenated features [v ; t̂] instead of fusing logits.
    case earlyFusion
    /// Every weight of both towers trained, no LoRA.
    case fullFineTune
    /// CLIP-IT with `percent`% of the words of every report removed (deterministic).
    case textDrop(percent: Int)
    /// Decision 8: generalized distillation from out-of-fold text teachers (soft targets
    /// + the cosine term; frozen text tower).
    case clipitKD
    /// Decision 8: InfoNCE of t̂ against the global batch's report embeddings instead of
    /// the cosine term (frozen text tower).
    case clipitContrastive
    /// Decision 8: the fusion also trained on the real report embeddings (+ the cosine
    /// term; frozen text tower).
    case clipitFusion
    /// Decision 10's oracle: `clipit-kd` with the retriever's own image tower in place of
    /// the text route (its embedding of the image as t, out-of-fold probes on it as teachers).
    case retrieverKD

    /// Every method, with `text-drop` at 50% as its representative.
    public static let all: [TrainingMethod] = [
        .unimodal, .unimodalLoRA, .clipit, .textOnly, .noDistill, .visionLogitsOnly, .noTextLoRA,
        .noVisionLoRA, .earlyFusion, .fullFineTune, .textDrop(percent: 50),
        .clipitKD, .clipitContrastive, .clipitFusion, .retrieverKD,
    ]

    /// Parses the command-line name: `unimodal`, `unimodal-lora`, `clipit`, `text-only`,
    /// `no-distill`, `vision-logits-only`, `no-text-lora`, `no-vision-lora`,
    /// `early-fusion`, `full-finetune`, `text-drop:K` (K in 0...100).
    public init(parsing text: String) throws {
        let name = text.trimmingCharacters(in: .whitespaces).lowercased()
        if name.hasPrefix("text-drop:") {
            guard let k = Int(name.dropFirst("text-drop:".count)), (0...100).contains(k) else {
                throw TrainingError("method '\(text)': text-drop needs a percentage 0...100, e.g. text-drop:30")
            }
            self = .textDrop(percent: k)
            return
        }
        let table: [String: TrainingMethod] = [
            "unimodal": .unimodal, "unimodal-lora": .unimodalLoRA, "clipit": .clipit, "text-only": .textOnly,
            "no-distill": .noDistill, "vision-logits-only": .visionLogitsOnly, "no-text-lora": .noTextLoRA,
            "no-vision-lora": .noVisionLoRA, "early-fusion": .earlyFusion, "full-finetune": .fullFineTune,
            "clipit-kd": .clipitKD, "clipit-contrastive": .clipitContrastive, "clipit-fusion": .clipitFusion,
            "retriever-kd": .retrieverKD,
        ]
        guard let method = table[name] else {
            let suggestion = nearestName(to: name, among: TrainingMethod.all.map(\.description) + ["text-drop:K"])
                .map { " (did you mean '\($0)'?)" } ?? ""
            throw TrainingError("unknown method '\(text)'\(suggestion); choose one of "
                                + TrainingMethod.all.map(\.description).joined(separator: ", ")
                                + " (text-drop:K with any K in 0...100)")
        }
        self = method
    }

    public var description: String {
        switch self {
        case .unimodal: return "unimodal"
        case .unimodalLoRA: return "unimodal-lora"
        case .clipit: return "clipit"
        case .textOnly: return "text-only"
        case .noDistill: return "no-distill"
        case .visionLogitsOnly: return "vision-logits-only"
        case .noTextLoRA: return "no-text-lora"
        case .noVisionLoRA: return "no-vision-lora"
        case .earlyFusion: return "early-fusion"
        case .fullFineTune: return "full-finetune"
        case .textDrop(let k): return "text-drop:\(k)"
        case .clipitKD: return "clipit-kd"
        case .clipitContrastive: return "clipit-contrastive"
        case .clipitFusion: return "clipit-fusion"
        case .retrieverKD: return "retriever-kd"
        }
    }

    /// The configuration keys this method presets (applied over the model preset, under
    /// the user's keys): the extensions' terms, each with a stop-gradient on t.
    public func applyDefaults(to config: inout TrainingConfig) {
        switch self {
        case .clipitKD, .retrieverKD:
            config.distill.kdWeight = 0.5
            config.distill.kdTemperature = 2
            config.model.distillationWeight = 1
            if self == .retrieverKD { config.distill.target = .retrieverImage }
        case .clipitContrastive:
            config.distill.contrastiveWeight = 1
            config.model.distillationWeight = 0
        case .clipitFusion:
            config.distill.fusionRealText = true
            config.model.distillationWeight = 1
        default:
            return
        }
        config.model.textGradient = .stopped
    }


    /// The fraction of words removed from every report before tokenisation.
    public var wordDropFraction: Double {
        if case .textDrop(let k) = self { return Double(k) / 100 }
        return 0
    }

    /// Whether training reads each image's paired report (pairs file and corpus needed).
    public var needsText: Bool {
        switch self {
        case .unimodal, .unimodalLoRA, .noDistill: return false
        default: return true
        }
    }

    /// Whether the method trains a `CLIPITModel` (CLIP-IT, its ablations and extensions).
    public var buildsCLIPITModel: Bool {
        switch self {
        case .unimodal, .unimodalLoRA, .textOnly: return false
        default: return true
        }
    }

    /// Whether the model reads images (all but the text-only classifier).
    public var readsImages: Bool { self != .textOnly }
}

/// Builds the model a method trains from the effective configuration. Every rank calls
/// this with the same configuration and gets bit-identical weights: parameters are drawn
/// from `config.seed` in declaration order, then the optional pretrained tower files are
/// loaded.
///
/// `loadingInitialWeights: false` skips the files (a checkpoint that stores every weight
/// does not need them).
public func makeModel(_ config: TrainingConfig, classes: Int,
                      loadingInitialWeights: Bool = true) throws -> any TrainableModel {
    let method = config.method
    let m = config.model
    let seed = UInt64(truncatingIfNeeded: config.seed)
    let lora = LoRAConfig(rank: m.lora.rank, alpha: m.lora.alpha, dropout: m.lora.dropout)
    let visionLoRA = TowerTraining(lora: lora, targets: m.visionLoraTargets)
    let textLoRA = TowerTraining(lora: lora, targets: m.textLoraTargets)
    let model: any TrainableModel
    switch method {
    case .unimodal, .unimodalLoRA:
        model = UnimodalModel(vision: m.vision, training: method == .unimodal ? .frozen : visionLoRA,
                                                classes: classes, crossEntropy: m.crossEntropy, seed: seed)
    case .textOnly:
        model = TextClassifier(text: m.text, training: textLoRA, classes: classes, seed: seed)
    default:
        var c = CLIPITConfig(vision: m.vision, text: m.text, visionTraining: visionLoRA, textTraining: textLoRA,
                             classes: classes, twoLayerProjection: m.twoLayerProjection, fusion: .late,
                             distillation: true, distillationWeight: m.distillationWeight,
                             textGradient: m.textGradient, crossEntropy: m.crossEntropy)
        switch method {
        case .noDistill: c.distillation = false; c.distillationWeight = 0
        case .visionLogitsOnly: c.fusion = .visionOnly
        case .noTextLoRA: c.textTraining = .frozen
        case .noVisionLoRA: c.visionTraining = .frozen
        case .earlyFusion: c.fusion = .early
        case .fullFineTune: c.visionTraining = .fullFineTune; c.textTraining = .fullFineTune
        default: break
        }
        let d = config.distill
        c.terms = DistillationTerms(softTargetWeight: d.kdWeight, temperature: d.kdTemperature,
                                    contrastiveWeight: d.contrastiveWeight,
                                    contrastiveTemperature: d.contrastiveTemperature, fusionOnRealText: d.fusionRealText)
        model = CLIPITModel(c, seed: seed)
    }
    if loadingInitialWeights { try loadInitialWeights(model.store, config: m) }
    return model
}

/// Loads `model.init_vision` / `model.init_text` into the towers present: a safetensors
/// file with our parameter names (`vision.*` / `text.*`; other tensors in the file are
/// ignored) or a pretrained model folder (`PretrainedModel`, imported through the
/// folder's weight mapping; the tower configs must be the folder's,
/// `TrainingConfig.resolvingPretrainedFolders`).
func loadInitialWeights(_ store: ParameterStore, config m: ModelSettings) throws {
    for (path, prefix) in [(m.initVision, "vision."), (m.initText, "text.")] where !path.isEmpty {
        guard store.parameters.contains(where: { $0.name.hasPrefix(prefix) }) else { continue }
        if isModelFolder(path) {
            try loadPretrainedFolder(path, prefix: prefix, into: store)
            continue
        }
        let file = try SafeTensorsFile(path: path)
        let hasOurNames = file.names.contains { $0.hasPrefix(prefix) }
        try store.load(from: file, prefix: prefix, filePrefix: hasOurNames ? prefix : "",
                       allowMissing: isLoRAParameterName, ignoreUnexpected: { _ in true })
    }
}

extension TrainingMethod: Codable {
    /// Decodes the command-line name (`init(parsing:)`), with the nearest valid name
    /// suggested on a typo.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let name = try container.decode(String.self)
        do {
            self = try TrainingMethod(parsing: name)
        } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "\(error)")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
