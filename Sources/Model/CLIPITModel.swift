import Kernels

/// Whether the distillation term's gradient reaches the text tower.
public enum TextGradient: String, NamedChoice, Equatable {
    /// ∂/∂t flows into the text tower's trainable parameters (the reference's "mutual"
    /// alignment, the default).
    case mutual
    /// Stop-gradient on t (ablation): the text tower is a fixed target. Its parameters are
    /// declared frozen whatever `textTraining` says, so no optimiser state or weight decay
    /// touches them.
    case stopped
}

/// The losses of one step, each already divided by the global batch size (so the sum of
/// the values over data-parallel ranks is the global batch mean).
public struct LossBreakdown: Sendable, Equatable {
    /// (1 − α)·ce + λ·distill + α·kd + w·contrastive + ce_real.
    public var total: Float
    /// Cross-entropy on the fused logits (over the labelled rows).
    public var ce: Float
    /// mean(1 − cos(t̂, t)) (before λ); 0 without a distillation term.
    public var distill: Float
    /// T²·KL(softmax(s/T) ‖ softmax(z/T)) against the teachers' logits (before α); 0 without.
    public var kd: Float
    /// InfoNCE of t̂ against the global batch's targets (before its weight); 0 without.
    public var contrastive: Float
    /// Cross-entropy of the fusion on the real report embeddings (`clipit-fusion`); 0 without.
    public var ceRealText: Float

    public init(total: Float, ce: Float, distill: Float, kd: Float = 0, contrastive: Float = 0, ceRealText: Float = 0) {
        self.total = total
        self.ce = ce
        self.distill = distill
        self.kd = kd
        self.contrastive = contrastive
        self.ceRealText = ceRealText
    }
}

/// The collapse-free distillation terms of CLIP-IT.md decision 8, beside the reference's
/// cosine term; every weight 0 is the reference method. They read a frozen target t
/// (stop-gradient) and, for the soft targets, teachers' logits (`DistillationInputs`).
public struct DistillationTerms: Codable, Equatable, Sendable {
    /// α: the loss is (1 − α)·CE(z, y) + α·T²·KL(softmax(s/T) ‖ softmax(z/T)) + … .
    public var softTargetWeight: Float
    /// T.
    public var temperature: Float
    /// Weight of InfoNCE(t̂, sg(t)) over the global batch.
    public var contrastiveWeight: Float
    /// τ of InfoNCE.
    public var contrastiveTemperature: Float
    /// The fusion also trained on real text: + CE(F([a; g(sg(t))]), y).
    public var fusionOnRealText: Bool

    public init(softTargetWeight: Float = 0, temperature: Float = 2, contrastiveWeight: Float = 0,
                contrastiveTemperature: Float = 0.07, fusionOnRealText: Bool = false) {
        self.softTargetWeight = softTargetWeight
        self.temperature = temperature
        self.contrastiveWeight = contrastiveWeight
        self.contrastiveTemperature = contrastiveTemperature
        self.fusionOnRealText = fusionOnRealText
    }

    /// Whether a term needs the target t to be a constant (a frozen text tower).
    public var needsFrozenTarget: Bool { contrastiveWeight > 0 || fusionOnRealText }
}

/// Everything that defines a CLIP-IT model (CLIP-IT.md, Stage 2, and its ablations).
public struct CLIPITConfig: Codable, Equatable, Sendable {
    public var vision: VisionConfig
    public var text: TextConfig
    /// LoRA targets / full fine-tuning / frozen, per tower.
    public var visionTraining: TowerTraining
    public var textTraining: TowerTraining
    /// C, the number of classes.
    public var classes: Int
    /// h_d as Linear(E→E)–LeakyReLU(0.1)–Linear(E→D).
    public var twoLayerProjection: Bool
    /// Late fusion (the method), vision logits only, or early fusion.
    public var fusion: FusionMode
    /// Whether the loss has the distillation term λ·(1 − cos(t̂, t)). Without it the text
    /// tower is not built and no tokens are needed.
    public var distillation: Bool
    /// λ, the distillation weight (1 in the reference).
    public var distillationWeight: Float
    public var textGradient: TextGradient
    /// Cross-entropy on logits (the method) or the reference's double softmax.
    public var crossEntropy: CrossEntropyMode
    /// The collapse-free terms beyond the reference (all off by default).
    public var terms: DistillationTerms

    public init(vision: VisionConfig, text: TextConfig, visionTraining: TowerTraining,
                textTraining: TowerTraining, classes: Int, twoLayerProjection: Bool = false,
                fusion: FusionMode = .late, distillation: Bool = true, distillationWeight: Float = 1,
                textGradient: TextGradient = .mutual, crossEntropy: CrossEntropyMode = .logits,
                terms: DistillationTerms = DistillationTerms()) {
        self.vision = vision
        self.text = text
        self.visionTraining = visionTraining
        self.textTraining = textTraining
        self.classes = classes
        self.twoLayerProjection = twoLayerProjection
        self.fusion = fusion
        self.distillation = distillation
        self.distillationWeight = distillationWeight
        self.textGradient = textGradient
        self.crossEntropy = crossEntropy
        self.terms = terms
    }

    /// The heads' sizes: E from the vision tower, D from the text tower.
    public var heads: HeadsConfig {
        HeadsConfig(featureWidth: vision.outputDim, textWidth: text.outputDim, classes: classes,
                    twoLayerProjection: twoLayerProjection, fusion: fusion, realTextBranch: terms.fusionOnRealText)
    }
}

/// CLIP-IT: a vision tower g_v with heads, distilled towards a text tower g_t's embedding
/// of each image's paired report.
///
///     v = g_v(I)            t̂ = h_d(v)            z = fusion([h_v(v) ; g(t̂)])
///     t = g_t(T)            L = (1/N) Σ_i [ CE(z_i, y_i) + λ·(1 − cos(t̂_i, t_i)) ]
///
/// and, with `config.terms` (decision 8; t then a constant, sg(t)), over N_L labelled and
/// N global rows:
///
///     L = (1 − α)/N_L Σ_labelled CE(z_i, y_i) + α/N Σ_i T²·KL(softmax(s_i/T) ‖ softmax(z_i/T))
///       + λ/N Σ_i (1 − cos(t̂_i, t_i)) + w/N Σ_i InfoNCE_τ(t̂_i; t_1…t_N)
///       + 1/N_L Σ_labelled CE(fusion([h_v(v_i) ; g(t_i)]), y_i)        (fusion on real text)
///
/// All parameters live in one `ParameterStore` (vision, text, heads, in that order); the
/// trainable ones form the flat buffer the optimiser and the gradient allreduce work on.
///
/// Data parallelism: each rank calls `forwardBackward` on its local rows with
/// `globalBatch` = the size N of the global batch. Every per-sample term is divided by N,
/// so the rank's gradient is its share of ∂L/∂θ and the allreduced SUM of the gradients
/// equals the gradient a single rank would compute on the whole batch (and the SUM of the
/// returned losses is the global loss). See docs/training-math.md.
public final class CLIPITModel: TrainableModel {
    public let config: CLIPITConfig
    public let store: ParameterStore
    public let vision: VisionTransformer
    /// The text tower; nil when the loss has no distillation term.
    public let text: TextTransformer?
    public let heads: CLIPITHeads
    public let crossEntropy: CrossEntropyLoss
    public let distillation: CosineDistillationLoss
    public let softTargets: SoftTargetDistillationLoss
    public let contrastive: ContrastiveTargetLoss
    /// The cross-entropy of the fusion on real text (`terms.fusionOnRealText`).
    public let crossEntropyRealText: CrossEntropyLoss

    private let visionTrains: Bool
    private let textTrains: Bool
    private let dLogits: ActivationBuffer     // (B, C)
    private let dFeatures: ActivationBuffer   // (B, E)
    private let dText: ActivationBuffer       // (B, D)
    private let dRealTextLogits: ActivationBuffer   // (B, C) of the fusion on real text
    /// v of the last forward, (B, E); owned by the vision tower.
    public private(set) var visionFeatures: UnsafePointer<Float>?
    /// t of the last training forward, (B, D); owned by the text tower.
    public private(set) var lastTextEmbeddings: UnsafePointer<Float>?

    /// Builds the towers and heads and initialises every parameter from `seed` (LoRA B = 0,
    /// PyTorch default Linear init for the heads); load pretrained weights afterwards.
    public init(_ config: CLIPITConfig, seed: UInt64) {
        precondition(config.classes > 0, "CLIPITConfig: classes must be positive")
        precondition(!config.terms.needsFrozenTarget || config.distillation,
                     "CLIPITConfig: the contrastive and real-text terms need the distillation target t")
        precondition(!config.terms.fusionOnRealText || config.fusion == .late,
                     "CLIPITConfig: fusion on real text needs late fusion")
        self.config = config
        let store = ParameterStore()
        self.store = store
        vision = VisionTransformer(config: config.vision, training: config.visionTraining, store: store)
        if config.distillation {
            let training = config.textGradient == .stopped ? TowerTraining.frozen : config.textTraining
            text = TextTransformer(config: config.text, training: training, store: store)
        } else {
            text = nil
        }
        heads = CLIPITHeads(config.heads, store: store)
        let arena = store.activations
        crossEntropy = CrossEntropyLoss(classes: config.classes, mode: config.crossEntropy, arena: arena)
        distillation = CosineDistillationLoss(width: config.text.outputDim, arena: arena)
        softTargets = SoftTargetDistillationLoss(classes: config.classes, arena: arena)
        contrastive = ContrastiveTargetLoss(width: config.text.outputDim, arena: arena)
        crossEntropyRealText = CrossEntropyLoss(classes: config.classes, mode: config.crossEntropy,
                                                name: "loss.cross_entropy_real_text", arena: arena)
        let c = config.classes, e = config.vision.outputDim, d = config.distillation ? config.text.outputDim : 0
        dLogits = arena.buffer("model.d_logits") { $0.samples * c }
        dFeatures = arena.buffer("model.d_features") { $0.samples * e }
        dText = arena.buffer("model.d_text") { $0.samples * d }
        let realC = config.terms.fusionOnRealText ? c : 0
        dRealTextLogits = arena.buffer("model.d_real_text_logits") { $0.samples * realC }
        store.allocate(seed: seed)
        visionTrains = store.hasTrainableParameters(prefix: vision.prefix)
        textTrains = text.map { store.hasTrainableParameters(prefix: $0.prefix) } ?? false
    }

    /// One training forward and backward on `batch` local samples: images (B, 3, H, W)
    /// normalised NCHW, labels (B) in 0..<C, token ids (B, L) of each image's paired report
    /// (may be nil without a distillation term). Adds ∂L/∂θ into `store.gradients` and, if
    /// `dImages` is given, ∂L/∂images into it. Per-sample terms are divided by `globalBatch`
    /// (default: `batch`, single rank).
    @discardableResult
    public func forwardBackward(images: UnsafePointer<Float>, labels: UnsafePointer<Int32>,
                                tokens: UnsafePointer<Int32>?, batch: Int, globalBatch: Int? = nil,
                                dImages: UnsafeMutablePointer<Float>? = nil,
                                textEmbeddings: UnsafePointer<Float>? = nil,
                                distillationInputs: DistillationInputs? = nil) -> LossBreakdown {
        let loss = forward(images: images, labels: labels, tokens: tokens, batch: batch, globalBatch: globalBatch,
                           textEmbeddings: textEmbeddings, inputs: distillationInputs, training: true, backward: true)
        backward(batch: batch, dImages: dImages)
        return loss
    }

    /// The loss without a backward pass (validation), same arguments as `forwardBackward`.
    /// Runs in whatever mode `isTraining` is in.
    public func loss(images: UnsafePointer<Float>, labels: UnsafePointer<Int32>,
                     tokens: UnsafePointer<Int32>?, batch: Int, globalBatch: Int? = nil) -> LossBreakdown {
        forward(images: images, labels: labels, tokens: tokens, batch: batch, globalBatch: globalBatch)
    }

    /// The training loss of `batch` (every term, `forwardBackward`'s value) without a
    /// backward pass: for gradient checks.
    public func trainingLoss(_ batch: ModelBatch, globalBatch: Int) -> LossBreakdown {
        forward(images: batch.images!, labels: batch.labels!, tokens: batch.tokens, batch: batch.count,
                globalBatch: globalBatch, textEmbeddings: batch.textEmbeddings, inputs: batch.distillation,
                training: true)
    }

    /// The losses of `batch` rows (`training`: with the terms that only training has;
    /// `backward`: the fusion on real text runs its backward here, before the main path's
    /// forward reuses its layers).
    private func forward(images: UnsafePointer<Float>, labels: UnsafePointer<Int32>,
                         tokens: UnsafePointer<Int32>?, batch: Int, globalBatch: Int?,
                         textEmbeddings: UnsafePointer<Float>? = nil, inputs: DistillationInputs? = nil,
                         training: Bool = false, backward: Bool = false) -> LossBreakdown {
        let n = globalBatch ?? batch
        let labelled = inputs?.labelledInGlobalBatch ?? n
        precondition(n >= batch && batch > 0, "CLIPITModel: globalBatch \(n) < local batch \(batch)")
        precondition(labelled > 0 && labelled <= n, "CLIPITModel: \(labelled) labelled rows in a global batch of \(n)")
        let terms = config.terms, alpha = terms.softTargetWeight
        // The contrastive term's buffers are sized by the global batch: reserved before any
        // activation is written.
        store.activations.reserve(samples: batch, globalSamples: max(batch, inputs?.batchTargetCount ?? 0))
        let v = vision.forward(images: images, batch: batch)                   // (B, E)
        visionFeatures = v
        var t: UnsafePointer<Float>?
        if let text {
            if let textEmbeddings {
                precondition(!textTrains, "CLIPITModel: precomputed text embeddings with a trainable text tower")
                t = textEmbeddings                                             // (B, D), computed once per run
            } else {
                guard let tokens else { preconditionFailure("CLIPITModel: the distillation term needs token ids") }
                t = text.forward(tokens: tokens, batch: batch)                 // (B, D)
            }
            lastTextEmbeddings = t
        }
        var ceRealText: Float = 0
        if training && terms.fusionOnRealText, let t {   // before `heads.forward`: the same layers
            let realLogits = heads.forwardOnRealText(features: v, text: t, batch: batch)
            ceRealText = crossEntropyRealText.forward(logits: realLogits, labels: labels, rows: batch, normalizer: labelled)
            if backward {
                dRealTextLogits.data.update(repeating: 0, count: batch * config.classes)
                crossEntropyRealText.backward(dLogits: dRealTextLogits.data)
                heads.backwardOnRealText(dLogits: dRealTextLogits.data)
            }
        }
        heads.forward(features: v, batch: batch)                               // z (B, C), t̂ (B, D)
        let ce = crossEntropy.forward(logits: heads.logits.data, labels: labels, rows: batch,
                                      normalizer: labelled)
        var distill: Float = 0, kd: Float = 0, infoNCE: Float = 0
        if let t {
            distill = distillation.forward(predicted: heads.projected.data, target: t, rows: batch,
                                           normalizer: n)
        }
        if alpha > 0, training {
            guard let teacher = inputs?.teacherLogits else {
                preconditionFailure("CLIPITModel: the soft-target term needs the teachers' logits")
            }
            kd = softTargets.forward(logits: heads.logits.data, teacher: teacher, rows: batch,
                                     temperature: terms.temperature, normalizer: n)
        }
        if terms.contrastiveWeight > 0, training {
            guard let inputs, let targets = inputs.batchTargets, let ids = inputs.batchTargetIDs,
                  let rowIDs = inputs.rowIDs else {
                preconditionFailure("CLIPITModel: the contrastive term needs the global batch's targets")
            }
            infoNCE = contrastive.forward(predicted: heads.projected.data, rowIDs: rowIDs, rows: batch,
                                          targets: targets, targetIDs: ids, targetCount: inputs.batchTargetCount,
                                          temperature: terms.contrastiveTemperature, normalizer: n)
        }
        // Outside training (validation) the loss is the reference's: CE + λ·distill.
        let ceWeight: Float = training ? 1 - alpha : 1
        let total = ceWeight * ce + config.distillationWeight * distill + alpha * kd
            + terms.contrastiveWeight * infoNCE + ceRealText
        return LossBreakdown(total: total, ce: ce, distill: distill, kd: kd, contrastive: infoNCE,
                             ceRealText: ceRealText)
    }

    /// Backward of the last `forward`: losses → heads → towers.
    private func backward(batch: Int, dImages: UnsafeMutablePointer<Float>?) {
        let e = vision.outputDim, c = config.classes
        let terms = config.terms, alpha = terms.softTargetWeight
        dLogits.data.update(repeating: 0, count: batch * c)
        crossEntropy.backward(dLogits: dLogits.data, scale: 1 - alpha)          // (B, C)
        if alpha > 0 { softTargets.backward(dLogits: dLogits.data, scale: alpha) }
        if terms.contrastiveWeight > 0 {
            contrastive.backward(dPredicted: heads.projectedGrad.data, scale: terms.contrastiveWeight)
        }
        if let text {
            let d = text.outputDim
            dText.data.update(repeating: 0, count: batch * d)
            // λ·∂(1 − cos)/∂t̂ into the heads' t̂ gradient, ∂/∂t into dText unless stopped.
            distillation.backward(dPredicted: heads.projectedGrad.data,
                                  dTarget: textTrains ? dText.data : nil,
                                  scale: config.distillationWeight)
            if textTrains { text.backward(dFeatures: dText.data) }
        }
        let needFeatureGradient = visionTrains || dImages != nil
        if needFeatureGradient {
            dFeatures.data.update(repeating: 0, count: batch * e)
        }
        heads.backward(dLogits: dLogits.data, dFeatures: needFeatureGradient ? dFeatures.data : nil)
        if needFeatureGradient { vision.backward(dFeatures: dFeatures.data, dImages: dImages) }
    }

    /// Image-only inference (Stage 3): the fused logits (B, C) of `batch` images. The text
    /// tower is not touched. Runs in evaluation mode (no LoRA dropout); the result is owned
    /// by the model and valid until the next forward.
    public func predict(images: UnsafePointer<Float>, batch: Int) -> UnsafePointer<Float> {
        inEvaluationMode {
            store.activations.reserve(samples: batch)
            let v = vision.forward(images: images, batch: batch)
            visionFeatures = v
            heads.forward(features: v, batch: batch)
            return UnsafePointer(heads.logits.data)
        }
    }

    // MARK: TrainableModel

    public var towers: [any Tower] { text.map { [vision, $0] } ?? [vision] }
    public var classes: Int { config.classes }
    public var trainingInputs: ModelInputs { text == nil ? [.images] : [.images, .tokens] }
    public var predictionInputs: ModelInputs { [.images] }

    public func forwardBackward(_ batch: ModelBatch, globalBatch: Int) -> LossBreakdown {
        forwardBackward(images: batch.images!, labels: batch.labels!, tokens: batch.tokens, batch: batch.count,
                        globalBatch: globalBatch, textEmbeddings: batch.textEmbeddings,
                        distillationInputs: batch.distillation)
    }

    /// Whether the distillation target t comes from a text tower that does not train (frozen,
    /// or `textGradient: stopped`): then t depends only on the report, and
    /// `embedReports` computes it once per run instead of every step.
    public var textTowerIsFrozen: Bool { text != nil && !textTrains }

    /// t of every report `(reports, D)`: the text tower on `tokens` `(reports, L)`, in
    /// chunks of at most `chunk` reports (the activations reserved), evaluation mode (the
    /// same function as the training forward of a tower without LoRA dropout to apply).
    public func embedReports(tokens: UnsafePointer<Int32>, count: Int, chunk: Int) -> [Float] {
        guard let text, count > 0 else { return [] }
        let d = text.outputDim, l = config.text.contextLength
        var table = [Float](repeating: 0, count: count * d)
        inEvaluationMode {
            for start in stride(from: 0, to: count, by: max(chunk, 1)) {
                let rows = min(chunk, count - start)
                store.activations.reserve(samples: rows)
                let t = text.forward(tokens: tokens + start * l, batch: rows)
                table.withUnsafeMutableBufferPointer { ($0.baseAddress! + start * d).update(from: t, count: rows * d) }
            }
        }
        return table
    }

    public func predict(_ batch: ModelBatch) -> UnsafePointer<Float> { predict(images: batch.images!, batch: batch.count) }

    public var textEmbeddingWidth: Int { text?.outputDim ?? 0 }
    public var textEmbeddings: UnsafePointer<Float>? { lastTextEmbeddings }
}
