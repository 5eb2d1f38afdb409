import Configuration
import Datasets
import Foundation
import Kernels
import Model
import Retrieval

/// A training run that cannot start or continue: a bad configuration, a missing or
/// inconsistent input file, a checkpoint that does not fit. `description` says what to do.
public struct TrainingError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The optimiser (`optim.optimizer`).
public enum OptimizerKind: String, NamedChoice {
    /// `torch.optim.Adam`: weight decay as an L2 term in the gradient.
    case adam
    /// AdamW: decoupled weight decay.
    case adamw
    /// SGD with momentum.
    case sgd
}

/// The learning-rate schedule (`optim.schedule`).
public enum ScheduleKind: String, NamedChoice {
    case constant
    /// Cosine annealing from `lr` to `eta_min` over the run.
    case cosine
    /// Linear warm-up over `warmup_steps`, then cosine annealing.
    case warmupCosine = "warmup-cosine"
}

/// How reports become token ids (`data.tokenizer`).
public enum TokenizerKind: String, NamedChoice {
    /// The built-in word-level tokenizer (docs/training.md).
    case word
    /// The CLIP BPE tokenizer of the model folder `model.init_text`.
    case clip
}

/// LoRA settings shared by both towers (the reference: r = 16, α = 8, dropout 0).
public struct LoRASettings: Codable, Equatable, Sendable {
    public var rank: Int
    public var alpha: Float
    public var dropout: Float

    public init(rank: Int = 16, alpha: Float = 8, dropout: Float = 0) {
        self.rank = rank
        self.alpha = alpha
        self.dropout = dropout
    }
}

/// The model: tower architectures, LoRA, heads, loss options, optional pretrained towers.
public struct ModelSettings: Codable, Equatable, Sendable {
    /// The preset the other keys start from (`tiny`, `demo`); see `TrainingConfig.preset`.
    public var preset: String
    public var vision: VisionConfig
    public var text: TextConfig
    public var lora: LoRASettings
    /// Which layers of each tower get LoRA when the method uses LoRA.
    public var visionLoraTargets: LoRATargets
    public var textLoraTargets: LoRATargets
    /// h_d as Linear(E→E)–LeakyReLU–Linear(E→D).
    public var twoLayerProjection: Bool
    /// λ of the distillation term.
    public var distillationWeight: Float
    /// `mutual` (the reference) or `stopped` (stop-gradient on t).
    public var textGradient: TextGradient
    /// `logits` (the method) or `referenceDoubleSoftmax` (the reference code's bug, as an
    /// explicit compatibility switch).
    public var crossEntropy: CrossEntropyMode
    /// Pretrained tower weights ("" = none): a safetensors file with our parameter names
    /// (a retriever export, `writeInternalWeights`) or a pretrained model folder (vision:
    /// timm / transformers CLIP / open_clip; text: transformers CLIP / open_clip), whose
    /// own config then sets the tower's architecture (`resolvingPretrainedFolders`).
    public var initVision: String
    public var initText: String

    public init(preset: String, vision: VisionConfig, text: TextConfig, lora: LoRASettings = LoRASettings(),
                visionLoraTargets: LoRATargets = .all, textLoraTargets: LoRATargets = .all,
                twoLayerProjection: Bool = false, distillationWeight: Float = 1,
                textGradient: TextGradient = .mutual, crossEntropy: CrossEntropyMode = .logits,
                initVision: String = "", initText: String = "") {
        self.preset = preset
        self.vision = vision
        self.text = text
        self.lora = lora
        self.visionLoraTargets = visionLoraTargets
        self.textLoraTargets = textLoraTargets
        self.twoLayerProjection = twoLayerProjection
        self.distillationWeight = distillationWeight
        self.textGradient = textGradient
        self.crossEntropy = crossEntropy
        self.initVision = initVision
        self.initText = initText
    }
}

/// Input files and how samples are prepared.
public struct DataSettings: Codable, Equatable, Sendable {
    /// Training and validation `.cds` files.
    public var train: String
    public var val: String
    /// Pairs files (Stage 1 output) of the training and validation splits ("" when the
    /// method needs no text; the validation pairs only for the text-only method).
    public var trainPairs: String
    public var valPairs: String
    /// The report corpus the pairs index into.
    public var reports: String
    /// `imagenet` (timm ViTs), `clip` or `unit`.
    public var normalization: NormalizationName
    /// Random resized crop, flips, quarter turns and colour jitter on training images.
    public var augment: Bool
    /// Text encoding: `word` (the built-in word-level tokenizer, docs/training.md) or
    /// `clip` (the CLIP BPE tokenizer of the model folder `model.init_text`; set
    /// automatically when that is a folder).
    public var tokenizer: TokenizerKind
    /// The exact evaluation transform of a pretrained image tower (resize the short side,
    /// centre crop, mean/std; `ImagePreprocessing`), set from the `model.init_vision`
    /// folder. When present it replaces `data.normalization`: evaluation (and training
    /// without augmentation) uses it as is, augmented training uses its mean and std.
    public var preprocessing: ImagePreprocessing?
    /// A pool of unlabelled images (`.cds`, decision 9) and its pairs file: they join the
    /// distillation terms only, `train.unlabeled_batch_size` of them in every global batch.
    public var unlabeled: String
    public var unlabeledPairs: String

    public init(train: String = "", val: String = "", trainPairs: String = "", valPairs: String = "",
                reports: String = "", normalization: NormalizationName = .imagenet, augment: Bool = true,
                tokenizer: TokenizerKind = .word, preprocessing: ImagePreprocessing? = nil,
                unlabeled: String = "", unlabeledPairs: String = "") {
        self.train = train
        self.val = val
        self.trainPairs = trainPairs
        self.valPairs = valPairs
        self.reports = reports
        self.normalization = normalization
        self.augment = augment
        self.tokenizer = tokenizer
        self.preprocessing = preprocessing
        self.unlabeled = unlabeled
        self.unlabeledPairs = unlabeledPairs
    }

    /// Decodes every key; `unlabeled` and `unlabeled_pairs` may be absent (configurations
    /// saved before them).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        train = try c.decode(String.self, forKey: .train)
        val = try c.decode(String.self, forKey: .val)
        trainPairs = try c.decode(String.self, forKey: .trainPairs)
        valPairs = try c.decode(String.self, forKey: .valPairs)
        reports = try c.decode(String.self, forKey: .reports)
        normalization = try c.decode(NormalizationName.self, forKey: .normalization)
        augment = try c.decode(Bool.self, forKey: .augment)
        tokenizer = try c.decode(TokenizerKind.self, forKey: .tokenizer)
        preprocessing = try c.decodeIfPresent(ImagePreprocessing.self, forKey: .preprocessing)
        unlabeled = try c.decodeIfPresent(String.self, forKey: .unlabeled) ?? ""
        unlabeledPairs = try c.decodeIfPresent(String.self, forKey: .unlabeledPairs) ?? ""
    }
}

/// What CLIP-IT's image model learns from the paired text beyond the reference's cosine
/// term (CLIP-IT.md decision 8): soft labels of out-of-fold teachers, InfoNCE against the
/// batch's report embeddings, fusion trained on real text. Each term has a weight; 0
/// turns it off. The methods `clipit-kd`, `clipit-contrastive`, `clipit-fusion` and
/// `retriever-kd` are presets of these keys (`TrainingMethod.distillDefaults`); the
/// cosine term's λ is `model.distillation_weight`.
public struct DistillSettings: Codable, Equatable, Sendable {
    /// α of (1 − α)·CE + α·T²·KL(softmax(s/T) ‖ softmax(z/T)); 0: no teacher.
    public var kdWeight: Float
    /// T, the distillation temperature.
    public var kdTemperature: Float
    /// A teacher-logits file (`clipit train --folds K` writes `teacher.safetensors`); ""
    /// with `kd_weight` > 0: the fold teachers are trained first, in the same job.
    public var teacher: String
    /// K, the number of out-of-fold teachers.
    public var folds: Int
    /// Weight of InfoNCE between t̂ and the global batch's report embeddings; 0: off.
    public var contrastiveWeight: Float
    /// τ of InfoNCE.
    public var contrastiveTemperature: Float
    /// The fusion head also trained on the real report embedding: CE(F([a; g(sg(t))]), y).
    public var fusionRealText: Bool
    /// Where t comes from: `text` (the frozen text tower on the paired report) or
    /// `retriever-image` (the retriever's own image tower on the image: the oracle).
    public var target: DistillTarget
    /// The retriever export whose image tower gives t when `target` is `retriever-image`.
    public var retriever: String

    public init(kdWeight: Float = 0, kdTemperature: Float = 2, teacher: String = "", folds: Int = 5,
                contrastiveWeight: Float = 0, contrastiveTemperature: Float = 0.07, fusionRealText: Bool = false,
                target: DistillTarget = .text, retriever: String = "") {
        self.kdWeight = kdWeight
        self.kdTemperature = kdTemperature
        self.teacher = teacher
        self.folds = folds
        self.contrastiveWeight = contrastiveWeight
        self.contrastiveTemperature = contrastiveTemperature
        self.fusionRealText = fusionRealText
        self.target = target
        self.retriever = retriever
    }

    /// Whether any term needs a frozen target t per row beyond the reference's cosine term.
    public var extendsReference: Bool { kdWeight > 0 || contrastiveWeight > 0 || fusionRealText || target != .text }
}

/// The source of the distillation target t (`distill.target`).
public enum DistillTarget: String, NamedChoice {
    /// The (frozen) text tower's embedding of the image's paired report.
    case text
    /// The retriever's image tower's embedding of the image itself (the oracle diagnostic).
    case retrieverImage = "retriever-image"
}

/// Optimiser and learning-rate schedule (the reference: Adam, lr 1e-3, weight decay 1e-4,
/// gradient-norm clipping 0.5, optional cosine annealing to 1e-4).
public struct OptimSettings: Codable, Equatable, Sendable {
    /// `adam` (L2 weight decay, `torch.optim.Adam`), `adamw` or `sgd`.
    public var optimizer: OptimizerKind
    public var lr: Float
    public var weightDecay: Float
    public var beta1: Float
    public var beta2: Float
    public var epsilon: Float
    /// SGD momentum.
    public var momentum: Float
    /// Global gradient-norm clipping threshold; 0 disables clipping.
    public var gradClip: Float
    /// `constant`, `cosine` or `warmup-cosine`.
    public var schedule: ScheduleKind
    public var etaMin: Float
    public var warmupSteps: Int

    public init(optimizer: OptimizerKind = .adam, lr: Float = 1e-3, weightDecay: Float = 1e-4, beta1: Float = 0.9,
                beta2: Float = 0.999, epsilon: Float = 1e-8, momentum: Float = 0.9, gradClip: Float = 0.5,
                schedule: ScheduleKind = .constant, etaMin: Float = 1e-4, warmupSteps: Int = 0) {
        self.optimizer = optimizer
        self.lr = lr
        self.weightDecay = weightDecay
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.momentum = momentum
        self.gradClip = gradClip
        self.schedule = schedule
        self.etaMin = etaMin
        self.warmupSteps = warmupSteps
    }
}

/// Loop length, batching, validation, logging and checkpoints.
public struct RunSettings: Codable, Equatable, Sendable {
    public var epochs: Int
    /// The global batch size B (all ranks together).
    public var batchSize: Int
    /// The global batch size of validation and prediction.
    public var evalBatchSize: Int
    /// Validations per epoch, evenly spaced (the last one at the end of the epoch); 0: none.
    public var validationsPerEpoch: Int
    /// Caps the run at this many optimiser steps (the schedule is sized to it); 0: no cap.
    public var maxSteps: Int
    /// Stops after this many steps *without* changing anything else (the schedule still
    /// spans the whole run) and writes `last.safetensors`: an interrupted run, for
    /// testing `--resume`. 0: run to the end.
    public var stopAfterSteps: Int
    /// Progress lines every this many steps when standard error is not a terminal.
    public var logEvery: Int
    /// Also write `last.safetensors` every this many steps (0: only after each
    /// validation and at the end).
    public var checkpointEvery: Int
    /// Store the frozen weights in checkpoints too (otherwise they are rebuilt from the
    /// seed and `model.init_*`, and verified by checksum on load).
    public var saveFrozen: Bool
    /// Stop with an error when a step's loss exceeds this many times the median of the last
    /// 50 steps (`DivergenceGuard`); 0: off.
    public var divergenceFactor: Float
    /// Bit-identical training on any rank count: each global batch is cut into micro-batches
    /// of `microBatchSize` images whose gradients are summed exactly (`DataParallelStep`'s
    /// deterministic mode; docs/training.md).
    public var deterministic: Bool
    /// Images per micro-batch in deterministic mode; ranks beyond ⌈batch_size / this⌉ hold
    /// no micro-batch.
    public var microBatchSize: Int
    /// Unlabelled images (`data.unlabeled`) added to every global batch of
    /// `batch_size` labelled ones; they join the distillation terms only.
    public var unlabeledBatchSize: Int
    /// What attention keeps for the backward: `stored` probabilities (faster on CPUs) or
    /// `recomputed` from two statistics per row (B·H·T² floats less per layer); the same
    /// bits either way (`AttentionProbabilities`).
    public var attentionProbabilities: AttentionProbabilities

    public init(epochs: Int = 10, batchSize: Int = 64, evalBatchSize: Int = 128, validationsPerEpoch: Int = 10,
                maxSteps: Int = 0, stopAfterSteps: Int = 0, logEvery: Int = 10, checkpointEvery: Int = 0,
                saveFrozen: Bool = false, divergenceFactor: Float = 0, deterministic: Bool = true,
                microBatchSize: Int = 8, unlabeledBatchSize: Int = 0,
                attentionProbabilities: AttentionProbabilities = .stored) {
        self.epochs = epochs
        self.batchSize = batchSize
        self.evalBatchSize = evalBatchSize
        self.validationsPerEpoch = validationsPerEpoch
        self.maxSteps = maxSteps
        self.stopAfterSteps = stopAfterSteps
        self.logEvery = logEvery
        self.checkpointEvery = checkpointEvery
        self.saveFrozen = saveFrozen
        self.divergenceFactor = divergenceFactor
        self.deterministic = deterministic
        self.microBatchSize = microBatchSize
        self.unlabeledBatchSize = unlabeledBatchSize
        self.attentionProbabilities = attentionProbabilities
    }

    /// Decodes every key; `divergence_factor`, `deterministic` and `micro_batch_size` may be
    /// absent (configurations saved before them resume as they ran: guard off, plain mode).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        epochs = try c.decode(Int.self, forKey: .epochs)
        batchSize = try c.decode(Int.self, forKey: .batchSize)
        evalBatchSize = try c.decode(Int.self, forKey: .evalBatchSize)
        validationsPerEpoch = try c.decode(Int.self, forKey: .validationsPerEpoch)
        maxSteps = try c.decode(Int.self, forKey: .maxSteps)
        stopAfterSteps = try c.decode(Int.self, forKey: .stopAfterSteps)
        logEvery = try c.decode(Int.self, forKey: .logEvery)
        checkpointEvery = try c.decode(Int.self, forKey: .checkpointEvery)
        saveFrozen = try c.decode(Bool.self, forKey: .saveFrozen)
        divergenceFactor = try c.decodeIfPresent(Float.self, forKey: .divergenceFactor) ?? 0
        deterministic = try c.decodeIfPresent(Bool.self, forKey: .deterministic) ?? false
        microBatchSize = try c.decodeIfPresent(Int.self, forKey: .microBatchSize) ?? 8
        unlabeledBatchSize = try c.decodeIfPresent(Int.self, forKey: .unlabeledBatchSize) ?? 0
        attentionProbabilities = try c.decodeIfPresent(AttentionProbabilities.self, forKey: .attentionProbabilities) ?? .stored
    }
}

/// Everything that defines a training run. Read from YAML (snake_case keys, e.g.
/// `optim.weight_decay`), starting from a preset, with command-line overrides; the
/// effective configuration is saved beside the checkpoints (`config.yaml`) and inside
/// every checkpoint. docs/training.md lists the keys.
public struct TrainingConfig: Codable, Equatable, Sendable {
    /// `clipit`, `unimodal`, … (`TrainingMethod`).
    public var method: TrainingMethod
    /// Seeds the weights, the data order, augmentation and dropout.
    public var seed: Int
    public var model: ModelSettings
    public var data: DataSettings
    public var optim: OptimSettings
    public var train: RunSettings
    public var distill: DistillSettings

    public init(method: TrainingMethod = .clipit, seed: Int = 0, model: ModelSettings, data: DataSettings = DataSettings(),
                optim: OptimSettings = OptimSettings(), train: RunSettings = RunSettings(),
                distill: DistillSettings = DistillSettings()) {
        self.method = method
        self.seed = seed
        self.model = model
        self.data = data
        self.optim = optim
        self.train = train
        self.distill = distill
    }

    /// Decodes every section; `distill` may be absent (configurations saved before it ran
    /// without its terms).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        method = try c.decode(TrainingMethod.self, forKey: .method)
        seed = try c.decode(Int.self, forKey: .seed)
        model = try c.decode(ModelSettings.self, forKey: .model)
        data = try c.decode(DataSettings.self, forKey: .data)
        optim = try c.decode(OptimSettings.self, forKey: .optim)
        train = try c.decode(RunSettings.self, forKey: .train)
        distill = try c.decodeIfPresent(DistillSettings.self, forKey: .distill) ?? DistillSettings()
    }

    // MARK: Presets

    /// The names `model.preset` accepts.
    public static let presetNames = ModelPreset.names

    /// A preset configuration:
    /// - `tiny`: the test towers of docs/model-contract.md (16 px images, patch 8, E = 32,
    ///   depth 2; text context 16, width 32, depth 2, vocabulary 128), LoRA r = 4, α = 8;
    ///   seconds per run.
    /// - `demo`: a small ViT (64 px, patch 8, E = 128, depth 4, 4 heads, MLP 256) and a
    ///   small text transformer (context 32, width 96, depth 2, vocabulary 512, 128-d
    ///   projection), LoRA r = 8, α = 8, 3 epochs of batch 32: sized so a run on the
    ///   synthetic benchmark takes well under a minute on two cores.
    public static func preset(_ name: String) throws -> TrainingConfig {
        guard let towers = ModelPreset.named(name) else {
            throw TrainingError("unknown model preset '\(name)'; choose one of \(presetNames.joined(separator: ", "))")
        }
        let tiny = name == "tiny"
        return TrainingConfig(
            model: ModelSettings(preset: name, vision: towers.vision, text: towers.text,
                                 lora: LoRASettings(rank: tiny ? 4 : 8, alpha: 8)),
            data: DataSettings(augment: !tiny),
            train: tiny ? RunSettings(epochs: 2, batchSize: 8, evalBatchSize: 16, validationsPerEpoch: 2, logEvery: 1)
                : RunSettings(epochs: 3, batchSize: 32, evalBatchSize: 64, validationsPerEpoch: 2, logEvery: 5))
    }

    // MARK: Validation

    /// Checks values that would otherwise fail deep inside the run.
    public func validate() throws {
        func require(_ condition: Bool, _ message: @autoclosure () -> String) throws {
            if !condition { throw TrainingError("config: " + message()) }
        }
        let method = self.method
        try require(train.epochs >= 1, "train.epochs must be at least 1, got \(train.epochs)")
        try require(train.batchSize >= 1, "train.batch_size must be at least 1, got \(train.batchSize)")
        try require(train.evalBatchSize >= 1, "train.eval_batch_size must be at least 1, got \(train.evalBatchSize)")
        try require(train.validationsPerEpoch >= 0, "train.validations_per_epoch must be non-negative")
        try require(train.maxSteps >= 0 && train.stopAfterSteps >= 0, "train.max_steps and train.stop_after_steps must be non-negative")
        try require(train.logEvery >= 1, "train.log_every must be at least 1")
        try require(train.divergenceFactor == 0 || train.divergenceFactor > 1,
                    "train.divergence_factor must be 0 (off) or above 1, got \(train.divergenceFactor)")
        try require(train.microBatchSize >= 1, "train.micro_batch_size must be at least 1, got \(train.microBatchSize)")
        try require(optim.lr > 0, "optim.lr must be positive")
        try require(optim.gradClip >= 0, "optim.grad_clip must be non-negative (0 disables clipping)")
        try require(model.lora.rank >= 1, "model.lora.rank must be at least 1")
        try require(model.lora.dropout >= 0 && model.lora.dropout < 1, "model.lora.dropout must be in [0, 1)")
        try require(model.vision.imageSize % model.vision.patchSize == 0,
                    "model.vision.image_size \(model.vision.imageSize) is not a multiple of patch_size \(model.vision.patchSize)")
        try require(model.vision.width % model.vision.heads == 0, "model.vision.width must be a multiple of heads")
        try require(model.text.width % model.text.heads == 0, "model.text.width must be a multiple of heads")
        if data.tokenizer == .word {
            try require(Int(model.text.endOfTextId) == model.text.vocabularySize - 1,
                        "model.text.end_of_text_id must be vocabulary_size − 1 (\(model.text.vocabularySize - 1)) for the word tokenizer")
        } else {
            try require(isModelFolder(model.initText),
                        "data.tokenizer 'clip' reads the tokenizer of the model folder model.init_text; set model.init_text to a "
                        + "transformers CLIP or open_clip folder")
        }
        if let p = data.preprocessing {
            try require(p.cropSize == model.vision.imageSize,
                        "data.preprocessing crops \(p.cropSize) px but model.vision.image_size is \(model.vision.imageSize)")
        }
        _ = try normalization()
        try require(!data.train.isEmpty, "no training data: pass --data DIR or --train FILE (data.train)")
        if method.needsText {
            try require(!data.trainPairs.isEmpty && !data.reports.isEmpty,
                        "method \(method) reads each image's paired report: pass --pairs and --reports (data.train_pairs, data.reports)")
        }
        let d = distill
        try require(d.kdWeight >= 0 && d.kdWeight <= 1, "distill.kd_weight (α) must be in [0, 1], got \(d.kdWeight)")
        try require(d.kdTemperature > 0, "distill.kd_temperature must be positive, got \(d.kdTemperature)")
        try require(d.contrastiveWeight >= 0, "distill.contrastive_weight must be non-negative")
        try require(d.contrastiveTemperature > 0, "distill.contrastive_temperature must be positive")
        try require(d.folds >= 2, "distill.folds must be at least 2, got \(d.folds)")
        try require(train.unlabeledBatchSize >= 0, "train.unlabeled_batch_size must be non-negative")
        if d.extendsReference {
            try require(method.buildsCLIPITModel && method != .noDistill,
                        "the distill.* terms train CLIP-IT's image model and its distillation target; method \(method) has none")
        }
        if d.contrastiveWeight > 0 || d.fusionRealText || d.target != .text {
            try require(model.textGradient == .stopped || method == .noTextLoRA,
                        "the contrastive and real-text terms, and a retriever target, read t as a constant: set "
                        + "model.text_gradient=stopped")
        }
        if d.fusionRealText {
            try require(method != .visionLogitsOnly && method != .earlyFusion, "distill.fusion_real_text needs late fusion")
        }
        if d.target == .retrieverImage {
            try require(!d.retriever.isEmpty, "distill.target retriever-image needs the retriever export: set distill.retriever")
        }
        if train.unlabeledBatchSize > 0 {
            try require(!data.unlabeled.isEmpty, "train.unlabeled_batch_size needs an unlabelled pool: set data.unlabeled")
        }
        if !data.unlabeled.isEmpty && train.unlabeledBatchSize > 0 {
            try require(method.buildsCLIPITModel && method != .noDistill,
                        "unlabelled images join the distillation terms only: method \(method) has none")
        }
        if !data.unlabeled.isEmpty && method.needsText {
            try require(!data.unlabeledPairs.isEmpty, "the unlabelled images need their pairs file (data.unlabeled_pairs, "
                        + "or --pairs DIR holding unlabeled.pairs.jsonl)")
        }
        if method == .textOnly && !data.val.isEmpty {
            try require(!data.valPairs.isEmpty, "the text-only method validates on the validation images' paired reports: pass the validation pairs (data.val_pairs)")
        }
    }

    /// The image normalisation: `data.preprocessing`'s mean and std when set, otherwise
    /// the one named by `data.normalization`.
    public func normalization() throws -> Normalization {
        if let p = data.preprocessing { return Normalization(mean: p.mean, std: p.std) }
        return data.normalization.normalization
    }

    // MARK: YAML

    /// Builds the effective configuration (`ConfigurationResolver`): the preset named by
    /// `model.preset` (default `tiny`) or `base` (a checkpoint's configuration when
    /// resuming), then `yaml` (a config file's text; its `pretrain:` section belongs to
    /// `clipit pretrain` and is skipped), then each `key.path=value` override. Every key
    /// given must exist: a misspelt key is an error, not silently ignored. `preset` (the
    /// command line's `--preset`) chooses the preset over the file's `model.preset`.
    public static func resolve(yaml: String?, overrides: [String] = [], base: TrainingConfig? = nil,
                               preset presetName: String? = nil, method methodName: String? = nil) throws -> TrainingConfig {
        do {
            var config = try ConfigurationResolver.resolve(yaml: yaml, overrides: overrides, otherSections: ["pretrain"],
                                                          keysDocument: "docs/training.md") { user in
                if let base { return base }
                var config = try preset(presetName ?? user.string(at: ["model", "preset"]) ?? "tiny")
                // The method's own keys (the extensions' terms) sit under the user's.
                if let name = methodName ?? user.string(at: ["method"]) {
                    config.method = try TrainingMethod(parsing: name)
                    config.method.applyDefaults(to: &config)
                }
                return config
            }
            if let methodName { config.method = try TrainingMethod(parsing: methodName) }
            return config
        } catch let error as ConfigurationError {
            throw TrainingError(error.description)
        }
    }

    /// The configuration as YAML with snake_case keys (what `config.yaml` holds).
    public func yaml() throws -> String { try ConfigurationResolver.yaml(of: self) }

    /// The configuration as one-line JSON (checkpoint metadata).
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// Parses `json()`.
    public static func fromJSON(_ text: String) throws -> TrainingConfig {
        try JSONDecoder().decode(TrainingConfig.self, from: Data(text.utf8))
    }
}
