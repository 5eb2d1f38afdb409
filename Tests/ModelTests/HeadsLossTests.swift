@testable import Formats
@testable import Import
import Kernels
@testable import Model
import Numerics
import XCTest

/// Forward values and finite-difference gradient checks of the CLIP-IT heads and losses.
final class HeadsLossTests: XCTestCase {

    // MARK: - Helpers

    /// Finite-difference check of `analytic` = ∂loss/∂x over every element of x (shared
    /// `GradientCheck`, small step: these functions are smooth except at LeakyReLU kinks).
    private func check(_ name: String, _ x: UnsafeMutablePointer<Float>, _ analytic: [Float],
                       loss: () -> Double, file: StaticString = #filePath, line: UInt = #line) {
        GradientCheck.check(name, values: x, analytic: analytic, count: analytic.count,
                            maxElements: 64, step: 1e-3, relativeTolerance: 2e-3, loss: loss,
                            file: file, line: line)
    }


    private func tensor(_ values: [Float], _ shape: [Int]) -> Tensor {
        Tensor(shape: shape, values: values)
    }

    private func weighted(_ p: UnsafePointer<Float>, _ w: [Float]) -> Double {
        var s = 0.0
        for i in w.indices { s += Double(p[i]) * Double(w[i]) }
        return s
    }

    // MARK: - Heads

    private func checkHeadsGradients(_ config: HeadsConfig, file: StaticString = #filePath,
                                     line: UInt = #line) {
        let b = 3, e = config.featureWidth, d = config.textWidth, c = config.classes
        let store = ParameterStore()
        let heads = CLIPITHeads(config, store: store)
        store.allocate(seed: 7)
        let v = tensor(uniformValues(b * e, seed: 1), [b, e])
        let wz = uniformValues(b * c, seed: 2), wt = uniformValues(b * d, seed: 3)
        // L = Σ wz ⊙ z + Σ wt ⊙ t̂, so ∂L/∂z = wz and the losses' share of ∂L/∂t̂ = wt.
        func loss() -> Double {
            heads.forward(features: v.data, batch: b)
            return weighted(heads.logits.data, wz) + weighted(heads.projected.data, wt)
        }
        _ = loss()
        store.zeroGradients()
        for i in 0..<(b * d) { heads.projectedGrad.data[i] += wt[i] }
        let dv = Tensor(shape: [b, e])
        wz.withUnsafeBufferPointer { heads.backward(dLogits: $0.baseAddress!, dFeatures: dv.data) }
        let gradients = store.gradients.array
        check("heads ∂L/∂v", v.data, dv.array, loss: loss, file: file, line: line)
        XCTAssertFalse(store.trainableParameters.isEmpty, "the heads declared no trainable parameter", file: file, line: line)
        for p in store.trainableParameters {
            check("heads ∂L/∂\(p.name)", p.value, Array(gradients[p.offset..<(p.offset + p.count)]),
                  loss: loss, file: file, line: line)
        }
    }

    func testHeadsParameterNamesFollowTheContract() {
        let store = ParameterStore()
        _ = CLIPITHeads(HeadsConfig(featureWidth: 8, textWidth: 6, classes: 3,
                                    twoLayerProjection: true), store: store)
        XCTAssertEqual(store.parameters.map(\.name), [
            "heads.vision_head.weight", "heads.vision_head.bias",
            "heads.projection.0.weight", "heads.projection.0.bias",
            "heads.projection.2.weight", "heads.projection.2.bias",
            "heads.text_head.0.weight", "heads.text_head.0.bias",
            "heads.text_head.2.weight", "heads.text_head.2.bias",
            "heads.fusion.weight", "heads.fusion.bias"])
        XCTAssertEqual(store.parameter(named: "heads.fusion.weight")!.shape, [3, 6])
        XCTAssertTrue(store.parameters.allSatisfy(\.isTrainable))
    }

    func testLateFusionForwardMatchesDirectComputation() {
        let b = 2, e = 5, d = 4, c = 3
        let store = ParameterStore()
        let heads = CLIPITHeads(HeadsConfig(featureWidth: e, textWidth: d, classes: c,
                                            twoLayerProjection: true), store: store)
        store.allocate(seed: 3)
        let v = uniformValues(b * e, seed: 9)
        v.withUnsafeBufferPointer { heads.forward(features: $0.baseAddress!, batch: b) }
        func w(_ name: String) -> [Float] {
            let p = store.parameter(named: name)!
            return Array(UnsafeBufferPointer(start: p.value, count: p.count))
        }
        func linear(_ x: [Double], _ name: String, _ i: Int, _ o: Int) -> [Double] {
            let wt = w(name + ".weight"), bias = w(name + ".bias")
            return (0..<o).map { r in (0..<i).reduce(Double(bias[r])) { $0 + Double(wt[r * i + $1]) * x[$1] } }
        }
        func leaky(_ x: [Double]) -> [Double] { x.map { $0 > 0 ? $0 : 0.1 * $0 } }
        for r in 0..<b {
            let x = (0..<e).map { Double(v[r * e + $0]) }
            let a = linear(x, "heads.vision_head", e, c)
            let tHat = linear(leaky(linear(x, "heads.projection.0", e, e)), "heads.projection.2", e, d)
            let bb = linear(leaky(linear(tHat, "heads.text_head.0", d, d)), "heads.text_head.2", d, c)
            let z = linear(a + bb, "heads.fusion", 2 * c, c)
            for j in 0..<d { XCTAssertEqual(Double(heads.projected.data[r * d + j]), tHat[j], accuracy: 1e-5) }
            for j in 0..<c { XCTAssertEqual(Double(heads.logits.data[r * c + j]), z[j], accuracy: 1e-5) }
        }
    }

    func testHeadsGradientsLateFusion() {
        checkHeadsGradients(HeadsConfig(featureWidth: 6, textWidth: 5, classes: 3))
    }

    func testHeadsGradientsTwoLayerProjection() {
        checkHeadsGradients(HeadsConfig(featureWidth: 6, textWidth: 5, classes: 3,
                                        twoLayerProjection: true))
    }

    func testHeadsGradientsVisionOnly() {
        checkHeadsGradients(HeadsConfig(featureWidth: 6, textWidth: 5, classes: 3, fusion: .visionOnly))
    }

    func testHeadsGradientsEarlyFusion() {
        checkHeadsGradients(HeadsConfig(featureWidth: 6, textWidth: 5, classes: 3,
                                        twoLayerProjection: true, fusion: .early))
    }

    // MARK: - Cross-entropy

    private func checkCrossEntropy(mode: CrossEntropyMode) {
        let b = 4, c = 5
        let z = tensor(uniformValues(b * c, seed: 11, scale: 3), [b, c])
        let labels: [Int32] = [0, 4, 2, 2]
        let ce = CrossEntropyLoss(classes: c, mode: mode)
        func loss() -> Double {
            Double(labels.withUnsafeBufferPointer {
                ce.forward(logits: z.data, labels: $0.baseAddress!, rows: b, normalizer: b)
            })
        }
        // Value against a direct Double computation.
        var expected = 0.0
        for i in 0..<b {
            var u = (0..<c).map { Double(z.data[i * c + $0]) }
            if mode == .referenceDoubleSoftmax {
                let m = u.max()!, s = u.reduce(0) { $0 + exp($1 - m) }
                u = u.map { exp($0 - m) / s }
            }
            let m = u.max()!, lse = m + log(u.reduce(0) { $0 + exp($1 - m) })
            expected += lse - u[Int(labels[i])]
        }
        XCTAssertEqual(loss(), expected / Double(b), accuracy: 1e-6)
        let dz = Tensor(shape: [b, c])
        _ = loss()
        ce.backward(dLogits: dz.data, scale: 0.7)
        check("CE \(mode)", z.data, dz.array) { 0.7 * loss() }
    }

    func testCrossEntropyOnLogits() { checkCrossEntropy(mode: .logits) }

    func testCrossEntropyReferenceDoubleSoftmax() { checkCrossEntropy(mode: .referenceDoubleSoftmax) }

    func testCrossEntropyIsStableForHugeLogits() {
        let z: [Float] = [1000, -1000, 0, 3e4, 3e4 + 1, -5]
        let labels: [Int32] = [0, 1]
        let ce = CrossEntropyLoss(classes: 3)
        let l = z.withUnsafeBufferPointer { zp in labels.withUnsafeBufferPointer {
            ce.forward(logits: zp.baseAddress!, labels: $0.baseAddress!, rows: 2, normalizer: 2)
        } }
        // Row 0: ℓ = 0; row 1: ℓ = log(1 + e) - ... = −log σ: log(e⁰ + e¹ + ~0) − 1 ≈ 0.3133.
        XCTAssertEqual(Double(l), (0 + (log(1 + exp(1.0)) - 1)) / 2, accuracy: 1e-3)
        XCTAssertTrue(l.isFinite)
    }

    func testGlobalNormalizerMakesRankSharesAddUp() {
        // Two "ranks" holding half a batch each, dividing by the global batch, sum to the
        // single-rank loss and gradient.
        let b = 6, c = 3
        let z = uniformValues(b * c, seed: 5, scale: 2)
        let labels: [Int32] = [0, 1, 2, 2, 1, 0]
        let whole = CrossEntropyLoss(classes: c)
        var dWhole = [Float](repeating: 0, count: b * c)
        let lWhole = z.withUnsafeBufferPointer { zp in labels.withUnsafeBufferPointer { lp in
            whole.forward(logits: zp.baseAddress!, labels: lp.baseAddress!, rows: b, normalizer: b)
        } }
        dWhole.withUnsafeMutableBufferPointer { whole.backward(dLogits: $0.baseAddress!) }
        var lSum: Float = 0
        var dSplit = [Float](repeating: 0, count: b * c)
        for half in 0..<2 {
            let part = CrossEntropyLoss(classes: c)
            let r0 = half * 3
            lSum += z.withUnsafeBufferPointer { zp in labels.withUnsafeBufferPointer { lp in
                part.forward(logits: zp.baseAddress! + r0 * c, labels: lp.baseAddress! + r0,
                             rows: 3, normalizer: b)
            } }
            dSplit.withUnsafeMutableBufferPointer { part.backward(dLogits: $0.baseAddress! + r0 * c) }
        }
        XCTAssertEqual(lSum, lWhole, accuracy: 1e-6)
        for i in 0..<(b * c) { XCTAssertEqual(dSplit[i], dWhole[i], accuracy: 1e-7) }
    }

    // MARK: - Cosine distillation

    func testCosineDistillationValueAndGradientsToBothSides() {
        let b = 3, d = 5
        let a = tensor(uniformValues(b * d, seed: 21), [b, d]), t = tensor(uniformValues(b * d, seed: 22), [b, d])
        let cosLoss = CosineDistillationLoss(width: d)
        func loss() -> Double {
            Double(cosLoss.forward(predicted: a.data, target: t.data, rows: b, normalizer: b))
        }
        var expected = 0.0
        for i in 0..<b {
            var ab = 0.0, aa = 0.0, tt = 0.0
            for j in 0..<d {
                let x = Double(a.data[i * d + j]), y = Double(t.data[i * d + j])
                ab += x * y; aa += x * x; tt += y * y
            }
            expected += 1 - ab / (aa.squareRoot() * tt.squareRoot())
        }
        XCTAssertEqual(loss(), expected / Double(b), accuracy: 1e-6)
        let da = Tensor(shape: [b, d]), dt = Tensor(shape: [b, d])
        _ = loss()
        cosLoss.backward(dPredicted: da.data, dTarget: dt.data, scale: 2)
        check("cos ∂/∂t̂", a.data, da.array) { 2 * loss() }
        check("cos ∂/∂t", t.data, dt.array) { 2 * loss() }
        // Stop-gradient on t: only t̂ receives a gradient, and the same one.
        let da2 = Tensor(shape: [b, d])
        _ = loss()
        cosLoss.backward(dPredicted: da2.data, dTarget: nil, scale: 2)
        XCTAssertEqual(da2.array, da.array)
    }

    // MARK: - Symmetric InfoNCE

    private func referenceInfoNCE(_ img: [Float], _ txt: [Float], n: Int, d: Int, s: Float) -> Double {
        func normalize(_ x: [Float]) -> [[Double]] {
            (0..<n).map { i in
                let row = (0..<d).map { Double(x[i * d + $0]) }
                let norm = row.reduce(0) { $0 + $1 * $1 }.squareRoot()
                return row.map { $0 / norm }
            }
        }
        let ii = normalize(img), tt = normalize(txt)
        let scale = exp(Double(min(s, SymmetricInfoNCELoss.maximumLogitScale)))
        let sim = (0..<n).map { i in (0..<n).map { j in scale * zip(ii[i], tt[j]).reduce(0) { $0 + $1.0 * $1.1 } } }
        func lse(_ x: [Double]) -> Double { let m = x.max()!; return m + log(x.reduce(0) { $0 + exp($1 - m) }) }
        var total = 0.0
        for i in 0..<n {
            total += lse(sim[i]) - sim[i][i]
            total += lse((0..<n).map { sim[$0][i] }) - sim[i][i]
        }
        return total / Double(2 * n)
    }

    func testInfoNCEValueAndGradientsIncludingLogitScale() {
        let n = 5, d = 4
        let img = tensor(uniformValues(n * d, seed: 31), [n, d]), txt = tensor(uniformValues(n * d, seed: 32), [n, d])
        let scaleParam = Tensor(shape: [1], values: [1.3])
        let nce = SymmetricInfoNCELoss(width: d)
        func loss() -> Double {
            Double(nce.forward(image: img.data, text: txt.data, rows: n, localRows: 0..<n,
                               logitScale: scaleParam.data[0]))
        }
        XCTAssertEqual(loss(), referenceInfoNCE(img.array, txt.array, n: n, d: d, s: 1.3), accuracy: 1e-5)
        let dImg = Tensor(shape: [n, d]), dTxt = Tensor(shape: [n, d]), dS = Tensor(shape: [1])
        _ = loss()
        nce.backward(dImage: dImg.data, dText: dTxt.data, dLogitScale: dS.data)
        check("InfoNCE ∂/∂I", img.data, dImg.array, loss: loss)
        check("InfoNCE ∂/∂T", txt.data, dTxt.array, loss: loss)
        check("InfoNCE ∂/∂s", scaleParam.data, dS.array, loss: loss)
    }

    func testInfoNCERankSharesSumToTheSingleRankLossAndGradient() {
        let n = 6, d = 3
        let img = uniformValues(n * d, seed: 41), txt = uniformValues(n * d, seed: 42)
        let s = SymmetricInfoNCELoss.initialLogitScale
        func run(_ local: Range<Int>) -> (Float, [Float], [Float], Float) {
            let nce = SymmetricInfoNCELoss(width: d)
            let l = img.withUnsafeBufferPointer { ip in txt.withUnsafeBufferPointer { tp in
                nce.forward(image: ip.baseAddress!, text: tp.baseAddress!, rows: n,
                            localRows: local, logitScale: s)
            } }
            let di = Tensor(shape: [local.count, d]), dt = Tensor(shape: [local.count, d])
            let ds = Tensor(shape: [1])
            nce.backward(dImage: di.data, dText: dt.data, dLogitScale: ds.data)
            return (l, di.array, dt.array, ds.data[0])
        }
        let whole = run(0..<n)
        let first = run(0..<2), second = run(2..<n)
        XCTAssertEqual(first.0 + second.0, whole.0, accuracy: 1e-6)
        XCTAssertEqual(first.3 + second.3, whole.3, accuracy: 1e-6)
        let di = first.1 + second.1, dt = first.2 + second.2
        for i in 0..<(n * d) {
            XCTAssertEqual(di[i], whole.1[i], accuracy: 1e-7)
            XCTAssertEqual(dt[i], whole.2[i], accuracy: 1e-7)
        }
    }

    func testInfoNCELogitScaleIsCappedAtLn100() {
        let n = 3, d = 2
        let img = uniformValues(n * d, seed: 51), txt = uniformValues(n * d, seed: 52)
        let nce = SymmetricInfoNCELoss(width: d)
        func value(_ s: Float) -> Float {
            img.withUnsafeBufferPointer { ip in txt.withUnsafeBufferPointer { tp in
                nce.forward(image: ip.baseAddress!, text: tp.baseAddress!, rows: n,
                            localRows: 0..<n, logitScale: s)
            } }
        }
        XCTAssertEqual(value(10), value(SymmetricInfoNCELoss.maximumLogitScale))
        let ds = Tensor(shape: [1])
        _ = value(10)
        nce.backward(dImage: nil, dText: nil, dLogitScale: ds.data)
        XCTAssertEqual(ds.data[0], 0)
        var p: Float = 7
        SymmetricInfoNCELoss.clampLogitScale(&p)
        XCTAssertEqual(p, SymmetricInfoNCELoss.maximumLogitScale)
        XCTAssertEqual(Double(SymmetricInfoNCELoss.initialLogitScale), log(1 / 0.07), accuracy: 1e-6)
    }
}
