@testable import Formats
@testable import Import
import Kernels
@testable import Model
import XCTest

/// Finite-difference checks of the WHOLE CLIP-IT loss (both towers, heads, CE and the
/// distillation term) with respect to every trainable tensor (a random subset of each
/// large one) and the input images, for the method and its ablation variants.
final class CLIPITGradientTests: XCTestCase {
    static let lora = LoRAConfig(rank: 2, alpha: 4)
    static let loraTraining = TowerTraining(lora: lora, targets: .all)
    static let batch = 3

    /// Small random inputs for the tiny towers: images (B, 3, 16, 16), labels, token ids
    /// with an end-of-text token at a different position in each row.
    private func inputs() -> (images: [Float], labels: [Int32], tokens: [Int32]) {
        let b = Self.batch
        let text = TextConfig.tiny
        var rng = RandomGenerator(seed: 5)
        var images = [Float](repeating: 0, count: b * 3 * 16 * 16)
        images.withUnsafeMutableBufferPointer { rng.fillGaussian($0.baseAddress!, count: $0.count) }
        let labels: [Int32] = [2, 0, 1]
        var tokens = [Int32](repeating: 0, count: b * text.contextLength)
        for r in 0..<b {
            let length = [4, 9, 16][r]
            for t in 0..<(length - 1) { tokens[r * text.contextLength + t] = Int32(1 + rng.nextInt(upperBound: 60)) }
            tokens[r * text.contextLength + length - 1] = text.endOfTextId
        }
        return (images, labels, tokens)
    }

    /// LoRA factors that start at zero (B, the embedding's A) get small random values, so
    /// that the gradients of the other factor are not identically zero.
    private func perturbZeroInitialised(_ store: ParameterStore) {
        var rng = RandomGenerator(seed: 17)
        for p in store.trainableParameters {
            var allZero = true
            for i in 0..<p.count where p.value[i] != 0 { allZero = false; break }
            if allZero { rng.fillGaussian(p.value, count: p.count, std: 0.1) }
        }
    }

    private func checkWholeLoss(_ config: CLIPITConfig, globalBatch: Int? = nil, step: Float = 1e-3,
                                file: StaticString = #filePath, line: UInt = #line) {
        let model = CLIPITModel(config, seed: 11)
        perturbZeroInitialised(model.store)
        let x = inputs()
        let b = Self.batch
        let images = Tensor(shape: [b, 3, 16, 16], values: x.images)
        func loss() -> Double {
            x.labels.withUnsafeBufferPointer { lp in x.tokens.withUnsafeBufferPointer { tp in
                Double(model.loss(images: images.data, labels: lp.baseAddress!,
                                  tokens: config.distillation ? tp.baseAddress! : nil, batch: b,
                                  globalBatch: globalBatch).total)
            } }
        }
        model.store.zeroGradients()
        let dImagesTensor = Tensor(shape: [b, 3, 16, 16])
        x.labels.withUnsafeBufferPointer { lp in x.tokens.withUnsafeBufferPointer { tp in
            _ = model.forwardBackward(images: images.data, labels: lp.baseAddress!,
                                      tokens: config.distillation ? tp.baseAddress! : nil,
                                      batch: b, globalBatch: globalBatch, dImages: dImagesTensor.data)
        } }
        let dImages = dImagesTensor.array
        var worst = 0.0, checked = 0
        for p in model.store.trainableParameters {
            let analytic = Array(UnsafeBufferPointer(start: p.gradient!, count: p.count))
            let r = GradientCheck.check(p.name, values: p.value, analytic: analytic, count: p.count,
                                        maxElements: 12, step: step, relativeTolerance: 5e-3, loss: loss, file: file, line: line)
            worst = max(worst, r.worstRelativeError)
            checked += r.checked
        }
        XCTAssertGreaterThan(checked, 0, "no trainable parameter element was checked", file: file, line: line)
        let r = GradientCheck.check("input.images", values: images.data, analytic: dImages,
                                    count: dImages.count, maxElements: 24, step: step,
                                    relativeTolerance: 5e-3, loss: loss,
                                    file: file, line: line)
        worst = max(worst, r.worstRelativeError)
        print("CLIP-IT whole-loss gradient check (\(config.fusion), two-layer \(config.twoLayerProjection), "
              + "\(config.crossEntropy), text \(config.textGradient)): \(checked + r.checked) elements, "
              + "worst relative error \(worst)")
    }

    private func config(vision: TowerTraining = loraTraining, text: TowerTraining = loraTraining,
                        twoLayer: Bool = false, fusion: FusionMode = .late, distillation: Bool = true,
                        lambda: Float = 1, textGradient: TextGradient = .mutual,
                        crossEntropy: CrossEntropyMode = .logits) -> CLIPITConfig {
        CLIPITConfig(vision: .tiny, text: .tiny, visionTraining: vision, textTraining: text, classes: 3,
                     twoLayerProjection: twoLayer, fusion: fusion, distillation: distillation,
                     distillationWeight: lambda, textGradient: textGradient, crossEntropy: crossEntropy)
    }

    func testWholeLossGradientMethodDefaults() {
        checkWholeLoss(config())
    }

    func testWholeLossGradientTwoLayerProjectionDoubleSoftmaxAndLambda() {
        checkWholeLoss(config(twoLayer: true, lambda: 0.5, crossEntropy: .referenceDoubleSoftmax),
                       globalBatch: 8)
    }

    func testWholeLossGradientFullFineTuningEarlyFusion() {
        checkWholeLoss(config(vision: .fullFineTune, text: .fullFineTune, fusion: .early))
    }

    func testWholeLossGradientVisionOnlyWithStoppedTextGradient() {
        let c = config(fusion: .visionOnly, textGradient: .stopped)
        let model = CLIPITModel(c, seed: 1)
        XCTAssertFalse(model.store.trainableParameters.contains { $0.name.hasPrefix("text.") },
                       "a stopped text gradient must leave the text tower frozen")
        XCTAssertNil(model.store.parameter(named: "heads.fusion.weight"))
        checkWholeLoss(c)
    }

    func testWholeLossGradientWithoutDistillationNeedsNoText() {
        let c = config(distillation: false)
        XCTAssertNil(CLIPITModel(c, seed: 1).text)
        checkWholeLoss(c)
    }

    /// Two "ranks" with half a global batch each, dividing by the global batch size,
    /// accumulate exactly the single-rank loss and gradient.
    func testRankGradientsSumToTheSingleRankGradient() {
        let x = inputs()
        let model = CLIPITModel(config(), seed: 3)
        perturbZeroInitialised(model.store)
        let b = Self.batch, l = TextConfig.tiny.contextLength, pixels = 3 * 16 * 16
        func step(rows: Range<Int>) -> Float {
            x.images.withUnsafeBufferPointer { ip in x.labels.withUnsafeBufferPointer { lp in
                x.tokens.withUnsafeBufferPointer { tp in
                    model.forwardBackward(images: ip.baseAddress! + rows.lowerBound * pixels,
                                          labels: lp.baseAddress! + rows.lowerBound,
                                          tokens: tp.baseAddress! + rows.lowerBound * l,
                                          batch: rows.count, globalBatch: b).total
                }
            } }
        }
        model.store.zeroGradients()
        let whole = step(rows: 0..<b)
        let wholeGradient = model.store.gradients.array
        model.store.zeroGradients()
        let split = step(rows: 0..<1) + step(rows: 1..<b)   // gradients accumulate
        XCTAssertEqual(split, whole, accuracy: 1e-5)
        let e = CLIPITParityTests.relativeError(model.store.gradients.array, wholeGradient)
        XCTAssertLessThan(e, 1e-5, "accumulated rank gradients differ from the single-rank one")
    }

    func testUnimodalLinearProbeTrainsOnlyTheHead() {
        let model = UnimodalModel(vision: .tiny, training: .frozen, classes: 3, seed: 2)
        XCTAssertEqual(model.store.trainableParameters.map(\.name),
                       ["heads.vision_head.weight", "heads.vision_head.bias"])
        let x = inputs()
        let images = Tensor(shape: [Self.batch, 3, 16, 16], values: x.images)
        func loss() -> Double {
            x.labels.withUnsafeBufferPointer { lp in
                model.store.zeroGradients()
                return Double(model.forwardBackward(images: images.data, labels: lp.baseAddress!,
                                                    batch: Self.batch).total)
            }
        }
        _ = loss()
        var checked = 0
        for p in model.store.trainableParameters {
            let analytic = Array(UnsafeBufferPointer(start: p.gradient!, count: p.count))
            checked += GradientCheck.check(p.name, values: p.value, analytic: analytic, count: p.count,
                                           step: 1e-3, relativeTolerance: 5e-3, loss: loss).checked
        }
        XCTAssertGreaterThan(checked, 0, "no trainable parameter element was checked")
    }

    func testTextClassifierGradients() {
        let model = TextClassifier(text: .tiny, training: Self.loraTraining, classes: 3, seed: 4)
        perturbZeroInitialised(model.store)
        let x = inputs()
        func loss() -> Double {
            x.labels.withUnsafeBufferPointer { lp in x.tokens.withUnsafeBufferPointer { tp in
                Double(model.forwardBackward(tokens: tp.baseAddress!, labels: lp.baseAddress!,
                                             batch: Self.batch).total)
            } }
        }
        model.store.zeroGradients()
        _ = loss()
        let gradients = model.store.gradients.array
        for p in model.store.trainableParameters {
            let analytic = Array(gradients[p.offset..<(p.offset + p.count)])
            GradientCheck.check(p.name, values: p.value, analytic: analytic, count: p.count,
                                maxElements: 8, step: 1e-3, relativeTolerance: 5e-3, loss: loss)
        }
    }
}
