
/// The unimodal baselines of CLIP-IT.md (decision 6): a vision tower and one linear head
/// `heads.vision_head` Linear(E→C), trained with cross-entropy only.
///
/// - `TowerTraining.frozen`: the frozen-backbone linear probe ("unimodal"); the tower's
///   backward is skipped entirely.
/// - a LoRA `TowerTraining`: "unimodal + LoRA", the same LoRA as CLIP-IT without text,
///   which isolates the text's contribution from LoRA's.
/// - `TowerTraining.fullFineTune`: full fine-tuning.
///
/// Same conventions as `CLIPITModel`: gradients are added (call `zeroGradients` per step)
/// and per-sample losses are divided by the global batch size.
public final class UnimodalModel: TrainableModel {
    public let vision: VisionTransformer
    public let head: LinearHead
    public let store: ParameterStore
    public let crossEntropy: CrossEntropyLoss
    public let classes: Int

    private let visionTrains: Bool
    private let dLogits: ActivationBuffer     // (B, C)
    private let dFeatures: ActivationBuffer   // (B, E)
    /// v of the last forward, (B, E); owned by the vision tower.
    public private(set) var visionFeatures: UnsafePointer<Float>?

    public init(vision config: VisionConfig, training: TowerTraining, classes: Int,
                crossEntropy mode: CrossEntropyMode = .logits, seed: UInt64) {
        let store = ParameterStore()
        self.store = store
        self.classes = classes
        vision = VisionTransformer(config: config, training: training, store: store)
        head = LinearHead("heads.vision_head", in: config.outputDim, classes: classes, store: store)
        let arena = store.activations
        crossEntropy = CrossEntropyLoss(classes: classes, mode: mode, arena: arena)
        let e = config.outputDim
        dLogits = arena.buffer("model.d_logits") { $0.samples * classes }
        dFeatures = arena.buffer("model.d_features") { $0.samples * e }
        store.allocate(seed: seed)
        visionTrains = store.hasTrainableParameters(prefix: vision.prefix)
    }

    /// One training forward and backward (see `CLIPITModel.forwardBackward`); `distill` is 0.
    @discardableResult
    public func forwardBackward(images: UnsafePointer<Float>, labels: UnsafePointer<Int32>,
                                batch: Int, globalBatch: Int? = nil,
                                dImages: UnsafeMutablePointer<Float>? = nil) -> LossBreakdown {
        let n = globalBatch ?? batch
        precondition(n >= batch && batch > 0, "UnimodalModel: globalBatch \(n) < local batch \(batch)")
        let e = vision.outputDim
        let v = vision.forward(images: images, batch: batch)                   // (B, E)
        visionFeatures = v
        head.forward(v, batch: batch)                                          // (B, C)
        let ce = crossEntropy.forward(logits: head.logits.data, labels: labels, rows: batch,
                                      normalizer: n)
        dLogits.data.update(repeating: 0, count: batch * classes)
        crossEntropy.backward(dLogits: dLogits.data)
        let needFeatureGradient = visionTrains || dImages != nil
        if needFeatureGradient {
            dFeatures.data.update(repeating: 0, count: batch * e)
        }
        head.backward(dLogits: dLogits.data, dx: needFeatureGradient ? dFeatures.data : nil)
        if needFeatureGradient { vision.backward(dFeatures: dFeatures.data, dImages: dImages) }
        return LossBreakdown(total: ce, ce: ce, distill: 0)
    }

    /// Logits (B, C) in evaluation mode; owned by the model, valid until the next forward.
    public func predict(images: UnsafePointer<Float>, batch: Int) -> UnsafePointer<Float> {
        inEvaluationMode {
            let v = vision.forward(images: images, batch: batch)
            visionFeatures = v
            head.forward(v, batch: batch)
            return UnsafePointer(head.logits.data)
        }
    }

    // MARK: TrainableModel

    public var towers: [any Tower] { [vision] }
    public var trainingInputs: ModelInputs { [.images] }
    public var predictionInputs: ModelInputs { [.images] }

    public func forwardBackward(_ batch: ModelBatch, globalBatch: Int) -> LossBreakdown {
        forwardBackward(images: batch.images!, labels: batch.labels!, batch: batch.count, globalBatch: globalBatch)
    }

    public func predict(_ batch: ModelBatch) -> UnsafePointer<Float> { predict(images: batch.images!, batch: batch.count) }

}

/// A text-only classifier: the text tower and one linear head `heads.text_classifier`
/// Linear(D→C) on t. Used for the Ω score (CLIP-IT.md, Analysis): the fraction of test
/// samples it gets right from the paired report while the vision-only model is wrong.
public final class TextClassifier: TrainableModel {
    public let text: TextTransformer
    public let head: LinearHead
    public let store: ParameterStore
    public let crossEntropy: CrossEntropyLoss
    public let classes: Int

    private let textTrains: Bool
    private let dLogits: ActivationBuffer     // (B, C)
    private let dFeatures: ActivationBuffer   // (B, D)

    public init(text config: TextConfig, training: TowerTraining, classes: Int, seed: UInt64) {
        let store = ParameterStore()
        self.store = store
        self.classes = classes
        text = TextTransformer(config: config, training: training, store: store)
        head = LinearHead("heads.text_classifier", in: config.outputDim, classes: classes, store: store)
        let arena = store.activations
        crossEntropy = CrossEntropyLoss(classes: classes, arena: arena)
        let d = config.outputDim
        dLogits = arena.buffer("model.d_logits") { $0.samples * classes }
        dFeatures = arena.buffer("model.d_features") { $0.samples * d }
        store.allocate(seed: seed)
        textTrains = store.hasTrainableParameters(prefix: text.prefix)
    }

    /// One training forward and backward on token ids (B, L); gradients are added.
    @discardableResult
    public func forwardBackward(tokens: UnsafePointer<Int32>, labels: UnsafePointer<Int32>,
                                batch: Int, globalBatch: Int? = nil) -> LossBreakdown {
        let n = globalBatch ?? batch
        precondition(n >= batch && batch > 0, "TextClassifier: globalBatch \(n) < local batch \(batch)")
        let d = text.outputDim
        let t = text.forward(tokens: tokens, batch: batch)                     // (B, D)
        head.forward(t, batch: batch)
        let ce = crossEntropy.forward(logits: head.logits.data, labels: labels, rows: batch,
                                      normalizer: n)
        dLogits.data.update(repeating: 0, count: batch * classes)
        crossEntropy.backward(dLogits: dLogits.data)
        if textTrains {
            dFeatures.data.update(repeating: 0, count: batch * d)
        }
        head.backward(dLogits: dLogits.data, dx: textTrains ? dFeatures.data : nil)
        if textTrains { text.backward(dFeatures: dFeatures.data) }
        return LossBreakdown(total: ce, ce: ce, distill: 0)
    }

    /// Logits (B, C) of token ids (B, L), evaluation mode.
    public func predict(tokens: UnsafePointer<Int32>, batch: Int) -> UnsafePointer<Float> {
        inEvaluationMode {
            head.forward(text.forward(tokens: tokens, batch: batch), batch: batch)
            return UnsafePointer(head.logits.data)
        }
    }

    // MARK: TrainableModel

    public var towers: [any Tower] { [text] }
    public var trainingInputs: ModelInputs { [.tokens] }
    public var predictionInputs: ModelInputs { [.tokens] }

    public func forwardBackward(_ batch: ModelBatch, globalBatch: Int) -> LossBreakdown {
        forwardBackward(tokens: batch.tokens!, labels: batch.labels!, batch: batch.count, globalBatch: globalBatch)
    }

    public func predict(_ batch: ModelBatch) -> UnsafePointer<Float> { predict(tokens: batch.tokens!, batch: batch.count) }

}
