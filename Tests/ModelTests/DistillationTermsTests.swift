@testable import Formats
import Kernels
@testable import Model
import XCTest

/// The collapse-free distillation terms (CLIP-IT.md decision 8) inside the whole CLIP-IT
/// model: finite differences of the whole training loss with every term on, with an
/// unlabelled row and a global batch larger than the local one; rank slices that add up to
/// the single-rank loss and gradient; and the reference method unchanged when every term
/// is off.
final class DistillationTermsTests: XCTestCase {
    static let lora = TowerTraining(lora: LoRAConfig(rank: 2, alpha: 4), targets: .all)
    static let batch = 4
    static let classes = 3

    /// Every term on: α = 0.4, T = 2, InfoNCE weight 0.7 (τ = 0.5: finite differences of
    /// exp(s/τ) stay in float's range of accuracy), fusion on real text, λ = 0.8.
    private func config(terms: DistillationTerms = DistillationTerms(
        softTargetWeight: 0.4, temperature: 2, contrastiveWeight: 0.7, contrastiveTemperature: 0.5,
        fusionOnRealText: true)) -> CLIPITConfig {
        CLIPITConfig(vision: .tiny, text: .tiny, visionTraining: Self.lora, textTraining: Self.lora,
                     classes: Self.classes, distillationWeight: 0.8, textGradient: .stopped, terms: terms)
    }

    /// Inputs of a local batch of 4 rows (the last unlabelled) in a global batch of 6 (5
    /// labelled): images, labels, frozen targets t for every global row with report ids
    /// (rows 0 and 4 share a report), the teachers' logits of the local rows.
    private struct Inputs {
        var images: [Float]
        var labels: [Int32] = [2, 0, 1, -1]
        var teacher: [Float]
        var targets: [Float]                       // (6, D)
        var targetIDs: [Int32] = [7, 3, 9, 12, 7, 5]
        let globalBatch = 6
        let labelledInGlobalBatch = 5
    }

    private func inputs() -> Inputs {
        var rng = RandomGenerator(seed: 21)
        func gaussian(_ count: Int, std: Float = 1) -> [Float] {
            var values = [Float](repeating: 0, count: count)
            values.withUnsafeMutableBufferPointer { rng.fillGaussian($0.baseAddress!, count: count, std: std) }
            return values
        }
        return Inputs(images: gaussian(Self.batch * 3 * 16 * 16), teacher: gaussian(Self.batch * Self.classes, std: 2),
                      targets: gaussian(6 * TextConfig.tiny.outputDim))
    }

    /// Runs `body` on the model batch of local rows `rows` (targets: the local rows are
    /// global rows 0..<4).
    private func withBatch<R>(_ x: Inputs, rows: Range<Int>, _ body: (ModelBatch) -> R) -> R {
        let d = TextConfig.tiny.outputDim, pixels = 3 * 16 * 16, c = Self.classes
        return x.images.withUnsafeBufferPointer { images in x.labels.withUnsafeBufferPointer { labels in
            x.teacher.withUnsafeBufferPointer { teacher in x.targets.withUnsafeBufferPointer { targets in
                x.targetIDs.withUnsafeBufferPointer { ids in
                    let inputs = DistillationInputs(
                        labelledInGlobalBatch: x.labelledInGlobalBatch, teacherLogits: teacher.baseAddress! + rows.lowerBound * c,
                        batchTargets: targets.baseAddress!, batchTargetIDs: ids.baseAddress!, batchTargetCount: x.globalBatch,
                        rowIDs: ids.baseAddress! + rows.lowerBound)
                    return body(ModelBatch(count: rows.count, images: images.baseAddress! + rows.lowerBound * pixels, tokens: nil,
                                           labels: labels.baseAddress! + rows.lowerBound,
                                           textEmbeddings: targets.baseAddress! + rows.lowerBound * d, distillation: inputs))
                }
            } }
        } }
    }

    /// LoRA B factors start at zero; small random values make every gradient non-trivial.
    private func perturbZeroInitialised(_ store: ParameterStore) {
        var rng = RandomGenerator(seed: 17)
        for p in store.trainableParameters where (0..<p.count).allSatisfy({ p.value[$0] == 0 }) {
            rng.fillGaussian(p.value, count: p.count, std: 0.1)
        }
    }

    func testWholeTrainingLossGradientWithEveryTermAndAnUnlabelledRow() {
        let model = CLIPITModel(config(), seed: 11)
        XCTAssertTrue(model.textTowerIsFrozen, "the extensions read t as a constant")
        perturbZeroInitialised(model.store)
        let x = inputs()
        let rows = 0 ..< Self.batch
        model.store.zeroGradients()
        let losses = withBatch(x, rows: rows) { model.forwardBackward($0, globalBatch: x.globalBatch) }
        XCTAssertGreaterThan(losses.kd, 0)
        XCTAssertGreaterThan(losses.contrastive, 0)
        XCTAssertGreaterThan(losses.ceRealText, 0)
        // The total is the weighted sum of its terms (the forward of forwardBackward).
        let expected = 0.6 * losses.ce + 0.4 * losses.kd + 0.8 * losses.distill + 0.7 * losses.contrastive + losses.ceRealText
        XCTAssertEqual(losses.total, expected, accuracy: 1e-6 * max(1, abs(expected)))
        let training = withBatch(x, rows: rows) { model.trainingLoss($0, globalBatch: x.globalBatch) }
        XCTAssertEqual(training, losses, "trainingLoss must be forwardBackward's forward")
        func loss() -> Double { Double(withBatch(x, rows: rows) { model.trainingLoss($0, globalBatch: x.globalBatch) }.total) }
        var checked = 0
        for p in model.store.trainableParameters {
            let analytic = Array(UnsafeBufferPointer(start: p.gradient!, count: p.count))
            // Same step and tolerance as the reference method's whole-loss check
            // (CLIPITGradientTests): float forward passes, central differences with h = 1e-3.
            checked += GradientCheck.check(p.name, values: p.value, analytic: analytic, count: p.count, maxElements: 12,
                                           step: 1e-3, relativeTolerance: 5e-3, loss: loss).checked
        }
        XCTAssertGreaterThan(checked, 0, "no trainable parameter element was checked")
        XCTAssertTrue(model.store.trainableParameters.contains { $0.name.hasPrefix("heads.fusion") })
        XCTAssertFalse(model.store.trainableParameters.contains { $0.name.hasPrefix("text.") })
    }

    /// Two ranks holding rows 0..<1 and 1..<4 of the same global batch add up to one rank
    /// holding all four: every term is divided by its global count, the contrastive term
    /// reads the whole batch's targets on every rank.
    func testRankSlicesSumToTheWholeBatch() {
        let model = CLIPITModel(config(), seed: 3)
        perturbZeroInitialised(model.store)
        let x = inputs()
        model.store.zeroGradients()
        let whole = withBatch(x, rows: 0 ..< 4) { model.forwardBackward($0, globalBatch: x.globalBatch) }
        let wholeGradient = model.store.gradients.array
        model.store.zeroGradients()
        let first = withBatch(x, rows: 0 ..< 1) { model.forwardBackward($0, globalBatch: x.globalBatch) }
        let second = withBatch(x, rows: 1 ..< 4) { model.forwardBackward($0, globalBatch: x.globalBatch) }
        for (name, a, b) in [("total", whole.total, first.total + second.total), ("kd", whole.kd, first.kd + second.kd),
                             ("contrastive", whole.contrastive, first.contrastive + second.contrastive),
                             ("ce_real_text", whole.ceRealText, first.ceRealText + second.ceRealText)] {
            // A few float additions in another order: relative 1e-5 is ~100 ulps of these sums.
            XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, abs(a)), name)
        }
        let e = CLIPITParityTests.relativeError(model.store.gradients.array, wholeGradient)
        XCTAssertLessThan(e, 1e-5, "accumulated rank gradients differ from the single-rank one")
    }

    /// With every term off, the training loss and gradient are the reference method's with
    /// a stopped text gradient, bit for bit (the extra buffers and terms change nothing).
    func testEveryTermOffIsTheReferenceMethod() {
        let plain = CLIPITModel(config(terms: DistillationTerms()), seed: 5)
        let x = inputs()
        var labelled = x
        labelled.labels = [2, 0, 1, 1]
        plain.store.zeroGradients()
        let withInputs = withBatch(labelled, rows: 0 ..< 3) { batch -> LossBreakdown in
            var batch = batch
            batch.distillation?.labelledInGlobalBatch = 3
            return plain.forwardBackward(batch, globalBatch: 3)
        }
        let gradient = plain.store.gradients.array
        plain.store.zeroGradients()
        let reference = labelled.images.withUnsafeBufferPointer { images in labelled.labels.withUnsafeBufferPointer { labels in
            labelled.targets.withUnsafeBufferPointer { targets in
                plain.forwardBackward(images: images.baseAddress!, labels: labels.baseAddress!, tokens: nil, batch: 3,
                                      globalBatch: 3, textEmbeddings: targets.baseAddress!)
            }
        } }
        XCTAssertEqual(withInputs, reference)
        XCTAssertEqual(plain.store.gradients.array, gradient)
    }
}
