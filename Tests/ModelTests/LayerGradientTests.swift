@testable import Formats
@testable import Import
import Kernels
@testable import Model
import XCTest

/// Finite-difference checks of every layer's backward pass (parameters and inputs).
final class LayerGradientTests: XCTestCase {

    // MARK: - Harness

    /// Gives every parameter a non-trivial random value: norm/LayerScale weights near 1
    /// (or their init scale), everything else (LoRA B included) N(0, std²).
    static func randomize(_ store: ParameterStore, seed: UInt64, std: Float = 0.3) {
        var rng = RandomGenerator(seed: seed)
        for p in store.parameters {
            let v = p.value
            for i in 0..<p.count {
                let z = rng.nextGaussian()
                switch p.initializer {
                case .ones: v[i] = 1 + 0.2 * z
                case .constant(let c): v[i] = c * (1 + 0.5 * z)
                default: v[i] = std * z
                }
            }
        }
    }

    static func randomTensor(_ shape: [Int], seed: UInt64, std: Float = 1) -> Tensor {
        let t = Tensor(shape: shape)
        var rng = RandomGenerator(seed: seed)
        rng.fillGaussian(t.data, count: t.count, std: std)
        return t
    }

    /// Runs forward + backward with loss = Σ w ⊙ output, then checks the analytic gradient
    /// of every trainable parameter and of every (value, gradient) input pair.
    static func checkGradients(store: ParameterStore, inputs: [(String, Tensor, Tensor)] = [],
                               outputCount: Int, step: Float = 1e-2, tolerance: Double = 2e-2,
                               maxElements: Int = 40,
                               forward: () -> UnsafePointer<Float>,
                               backward: (UnsafePointer<Float>) -> Void,
                               file: StaticString = #filePath, line: UInt = #line) {
        let w = GradientCheck.weights(count: outputCount)
        store.zeroGradients()
        for (_, _, g) in inputs { g.zero() }
        _ = forward()
        w.withUnsafeBufferPointer { backward($0.baseAddress!) }
        let loss = { GradientCheck.project(forward(), w) }
        var checkedSomething = false
        for p in store.trainableParameters {
            let analytic = Array(UnsafeBufferPointer(start: p.gradient!, count: p.count))
            GradientCheck.check(p.name, values: p.value, analytic: analytic, count: p.count,
                                maxElements: maxElements, step: step, relativeTolerance: tolerance,
                                loss: loss, file: file, line: line)
            checkedSomething = true
        }
        for (name, x, g) in inputs {
            GradientCheck.check(name, values: x.data, analytic: g.array, count: x.count,
                                maxElements: maxElements, step: step, relativeTolerance: tolerance,
                                loss: loss, file: file, line: line)
            checkedSomething = true
        }
        XCTAssertTrue(checkedSomething, "nothing to check", file: file, line: line)
        _ = forward()   // leave the layer's state at the unperturbed values
    }

    /// The checker accepts a right gradient and rejects a wrong one.
    func testGradientCheckSelfTest() {
        let x = Self.randomTensor([100], seed: 1)
        let loss = { (0..<100).reduce(0.0) { $0 + Double(x.data[$1]) * Double(x.data[$1]) } }
        let right = x.array.map { 2 * $0 }, wrong = x.array.map { 2.2 * $0 }
        let good = GradientCheck.check("right", values: x.data, analytic: right, count: 100, loss: loss)
        XCTAssertEqual(good.failures, 0)
        XCTAssertEqual(good.checked, 48)
        let bad = GradientCheck.check("wrong", values: x.data, analytic: wrong, count: 100, loss: loss,
                                      reportFailures: false)
        XCTAssertGreaterThan(bad.failures, 40)
    }

    // MARK: - LayerNorm

    func testLayerNorm() {
        let store = ParameterStore()
        let ln = LayerNormLayer("ln", features: 16, eps: 1e-5, region: .trainable, store: store)
        store.allocate(seed: 1)
        Self.randomize(store, seed: 2)
        let rows = 5
        let x = Self.randomTensor([rows, 16], seed: 3, std: 2), dx = Tensor(shape: [rows, 16])
        let y = Tensor(shape: [rows, 16])
        Self.checkGradients(store: store, inputs: [("x", x, dx)], outputCount: y.count,
                            forward: { ln.forward(x.data, y.data, rows: rows); return UnsafePointer(y.data) },
                            backward: { ln.backward($0, dx: dx.data) })
        XCTAssertEqual(store.trainableCount, 32)
    }

    // MARK: - Attention

    private func checkAttention(layout: QKVLayout, causal: Bool, validLengths: [Int]? = nil,
                                lora: LoRAConfig? = nil, line: UInt = #line) {
        let (B, T, E, H) = (2, 5, 16, 4)
        let store = ParameterStore()
        let attention = MultiHeadAttention("attn", embedDim: E, heads: H, layout: layout, causal: causal,
                                           region: .trainable, lora: lora, store: store)
        store.allocate(seed: 10)
        Self.randomize(store, seed: 11)
        store.execution.dropout = DropoutStream(seed: 5, step: 3)
        attention.setKeyPadding(validLengths: validLengths, tokens: T)
        let x = Self.randomTensor([B * T, E], seed: 12), dx = Tensor(shape: [B * T, E])
        let y = Tensor(shape: [B * T, E])
        Self.checkGradients(store: store, inputs: [("x", x, dx)], outputCount: y.count,
                            forward: {
                                attention.forward(x.data, y.data, batch: B, tokens: T)
                                return UnsafePointer(y.data)
                            },
                            backward: { attention.backward($0, dx: dx.data) }, line: line)
        for v in y.array { XCTAssertTrue(v.isFinite, line: line) }
    }

    func testAttentionFused() { checkAttention(layout: .fused, causal: false) }
    func testAttentionSeparate() { checkAttention(layout: .separate, causal: false) }
    func testAttentionFusedCausal() { checkAttention(layout: .fused, causal: true) }
    func testAttentionSeparateCausal() { checkAttention(layout: .separate, causal: true) }
    func testAttentionKeyPadding() { checkAttention(layout: .fused, causal: false, validLengths: [3, 5]) }
    func testAttentionCausalKeyPadding() {
        checkAttention(layout: .separate, causal: true, validLengths: [5, 2])
    }
    func testAttentionLoRAWithDropout() {
        checkAttention(layout: .separate, causal: true, lora: LoRAConfig(rank: 2, alpha: 4, dropout: 0.25))
    }

    /// Padded keys do not influence any output; a fully masked sequence gives finite
    /// outputs (the output-projection bias) and zero input gradients.
    func testAttentionMaskSemantics() {
        let (B, T, E, H) = (2, 4, 8, 2)
        let store = ParameterStore()
        let attention = MultiHeadAttention("attn", embedDim: E, heads: H, layout: .fused, causal: false,
                                           region: .trainable, lora: nil, store: store)
        store.allocate(seed: 1)
        Self.randomize(store, seed: 2)
        attention.setKeyPadding(validLengths: [2, 0], tokens: T)
        let x = Self.randomTensor([B * T, E], seed: 3)
        let y = Tensor(shape: [B * T, E])
        attention.forward(x.data, y.data, batch: B, tokens: T)
        let before = y.array
        for j in 0..<E { x.data[3 * E + j] += 5 }   // a padded key of sequence 0
        attention.forward(x.data, y.data, batch: B, tokens: T)
        for i in 0..<(3 * E) { XCTAssertEqual(y.data[i], before[i], accuracy: 1e-6) }   // queries 0..<3
        let bias = attention.outputProjection.bias!.value
        for t in 0..<T {
            for j in 0..<E { XCTAssertEqual(y.data[(T + t) * E + j], bias[j], accuracy: 1e-6) }
        }
        let dy = Self.randomTensor([B * T, E], seed: 4), dx = Tensor(shape: [B * T, E])
        attention.backward(dy.data, dx: dx.data)
        for i in (T * E)..<(2 * T * E) { XCTAssertEqual(dx.data[i], 0) }
        for v in dx.array { XCTAssertTrue(v.isFinite) }
    }

    // MARK: - MLP and block

    func testMLPActivations() {
        for activation in [Activation.gelu, .geluTanh, .quickGELU] {
            let store = ParameterStore()
            let mlp = MLP("mlp", features: 8, hidden: 12, activation: activation, region: .trainable,
                          lora: nil, store: store)
            store.allocate(seed: 20)
            Self.randomize(store, seed: 21)
            let rows = 6
            let x = Self.randomTensor([rows, 8], seed: 22), dx = Tensor(shape: [rows, 8])
            let y = Tensor(shape: [rows, 8])
            Self.checkGradients(store: store, inputs: [("x", x, dx)], outputCount: y.count,
                                forward: { mlp.forward(x.data, y.data, rows: rows); return UnsafePointer(y.data) },
                                backward: { mlp.backward($0, dx: dx.data) })
        }
    }

    private func checkBlock(naming: BlockNaming, layout: QKVLayout, causal: Bool, layerScale: Float?,
                            lora: LoRAConfig?, line: UInt = #line) {
        let (B, T, E, H) = (2, 4, 16, 2)
        let store = ParameterStore()
        let block = TransformerBlock("blk", width: E, heads: H, mlpHidden: 24, activation: .gelu,
                                     eps: 1e-6, layerScaleInit: layerScale, naming: naming, qkv: layout,
                                     causal: causal, region: .trainable,
                                     lora: BlockLoRA(attention: lora, mlp: lora), store: store)
        store.allocate(seed: 30)
        Self.randomize(store, seed: 31)
        let x = Self.randomTensor([B * T, E], seed: 32), dx = Tensor(shape: [B * T, E])
        let y = Tensor(shape: [B * T, E])
        XCTAssertFalse(store.trainableParameters.isEmpty, "the block declared no trainable parameter", line: line)
        Self.checkGradients(store: store, inputs: [("x", x, dx)], outputCount: y.count,
                            forward: {
                                block.forward(x.data, y.data, batch: B, tokens: T)
                                return UnsafePointer(y.data)
                            },
                            backward: { block.backward($0, dx: dx.data) }, line: line)
    }

    func testBlockTimmLayerScale() {
        checkBlock(naming: .timm, layout: .fused, causal: false, layerScale: 0.1, lora: nil)
    }
    func testBlockCLIPCausal() {
        checkBlock(naming: .hfCLIP, layout: .separate, causal: true, layerScale: nil, lora: nil)
    }
    func testBlockLoRA() {
        checkBlock(naming: .timm, layout: .fused, causal: false, layerScale: 0.5,
                   lora: LoRAConfig(rank: 3, alpha: 6))
    }

    func testBlockParameterNames() {
        let store = ParameterStore()
        _ = TransformerBlock("b", width: 8, heads: 2, mlpHidden: 16, activation: .gelu, eps: 1e-6,
                             layerScaleInit: 0.1, naming: .timm, qkv: .fused, causal: false,
                             region: .frozen, lora: BlockLoRA(attention: LoRAConfig(rank: 2), mlp: nil),
                             store: store)
        XCTAssertEqual(store.parameters.map(\.name), [
            "b.norm1.weight", "b.norm1.bias", "b.attn.qkv.weight", "b.attn.qkv.bias",
            "b.attn.qkv.lora_A.weight", "b.attn.qkv.lora_B.weight", "b.attn.proj.weight",
            "b.attn.proj.bias", "b.attn.proj.lora_A.weight", "b.attn.proj.lora_B.weight",
            "b.ls1.gamma", "b.norm2.weight", "b.norm2.bias", "b.mlp.fc1.weight", "b.mlp.fc1.bias",
            "b.mlp.fc2.weight", "b.mlp.fc2.bias", "b.ls2.gamma"])
        let hf = ParameterStore()
        _ = TransformerBlock("l", width: 8, heads: 2, mlpHidden: 16, activation: .quickGELU, eps: 1e-5,
                             layerScaleInit: nil, naming: .hfCLIP, qkv: .separate, causal: true,
                             region: .frozen, lora: BlockLoRA(attention: nil, mlp: nil), store: hf)
        XCTAssertEqual(hf.parameters.map(\.name).filter { $0.hasSuffix(".weight") }, [
            "l.layer_norm1.weight", "l.self_attn.q_proj.weight", "l.self_attn.k_proj.weight",
            "l.self_attn.v_proj.weight", "l.self_attn.out_proj.weight", "l.layer_norm2.weight",
            "l.mlp.fc1.weight", "l.mlp.fc2.weight"])
    }

    // MARK: - Embeddings

    func testPatchEmbedding() {
        for lora in [nil, LoRAConfig(rank: 2, alpha: 4)] {
            let (B, C, H, W, P, E) = (2, 3, 8, 12, 4, 5)
            let store = ParameterStore()
            let embed = PatchEmbedding("pe", patchSize: P, channels: C, width: E, bias: true,
                                       region: .trainable, lora: lora, store: store)
            store.allocate(seed: 40)
            Self.randomize(store, seed: 41)
            let images = Self.randomTensor([B, C, H, W], seed: 42), dImages = Tensor(shape: [B, C, H, W])
            let N = embed.patchCount(height: H, width: W)
            let y = Tensor(shape: [B * N, E])
            Self.checkGradients(store: store, inputs: [("images", images, dImages)], outputCount: y.count,
                                forward: {
                                    embed.forward(images.data, y.data, batch: B, height: H, width: W)
                                    return UnsafePointer(y.data)
                                },
                                backward: { embed.backward($0, dImages: dImages.data) })
        }
    }

    /// The unfold + GEMM equals a direct strided convolution.
    func testPatchEmbeddingMatchesConvolution() {
        let (B, C, H, W, P, E) = (1, 3, 8, 8, 4, 3)
        let store = ParameterStore()
        let embed = PatchEmbedding("pe", patchSize: P, channels: C, width: E, bias: false,
                                   region: .frozen, lora: nil, store: store)
        store.allocate(seed: 1)
        let images = Self.randomTensor([B, C, H, W], seed: 2)
        let y = Tensor(shape: [4, E])
        embed.forward(images.data, y.data, batch: B, height: H, width: W)
        let w = embed.proj.weight.value
        for py in 0..<2 {
            for px in 0..<2 {
                for e in 0..<E {
                    var s: Float = 0
                    for c in 0..<C {
                        for ky in 0..<P {
                            for kx in 0..<P {
                                s += w[((e * C + c) * P + ky) * P + kx]
                                    * images.data[(c * H + py * P + ky) * W + px * P + kx]
                            }
                        }
                    }
                    XCTAssertEqual(y.data[(py * 2 + px) * E + e], s, accuracy: 1e-5)
                }
            }
        }
    }

    func testTokenEmbeddingLoRA() {
        let (V, D, rows) = (11, 6, 7)
        let ids: [Int32] = [3, 0, 10, 3, 7, 7, 1]
        for lora in [nil, LoRAConfig(rank: 3, alpha: 6)] {
            let store = ParameterStore()
            let embed = TokenEmbedding("emb", vocabularySize: V, width: D, region: .trainable, lora: lora,
                                       store: store)
            store.allocate(seed: 50)
            Self.randomize(store, seed: 51)
            if lora != nil {
                XCTAssertFalse(embed.weight.isTrainable)
                XCTAssertEqual(embed.loraA!.shape, [3, V])
                XCTAssertEqual(embed.loraB!.shape, [D, 3])
            }
            let y = Tensor(shape: [rows, D])
            ids.withUnsafeBufferPointer { idp in
                Self.checkGradients(store: store, outputCount: y.count,
                                    forward: {
                                        embed.forward(idp.baseAddress!, y.data, rows: rows)
                                        return UnsafePointer(y.data)
                                    },
                                    backward: { embed.backward($0) })
                guard lora != nil else { return }
                // Merged table gives the same embeddings; unmerge restores the table.
                let unmerged = y.array, table = Array(UnsafeBufferPointer(start: embed.weight.value, count: V * D))
                embed.mergeLoRA()
                embed.forward(idp.baseAddress!, y.data, rows: rows)
                for i in 0..<y.count { XCTAssertEqual(y.data[i], unmerged[i], accuracy: 1e-5) }
                embed.unmergeLoRA()
                for i in 0..<(V * D) { XCTAssertEqual(embed.weight.value[i], table[i], accuracy: 1e-6) }
            }
        }
    }

    /// PEFT's Embedding LoRA init: A = 0, B ~ N(0, 1).
    func testTokenEmbeddingLoRAInit() {
        let store = ParameterStore()
        let embed = TokenEmbedding("emb", vocabularySize: 50, width: 40, region: .frozen,
                                   lora: LoRAConfig(rank: 4, alpha: 8), store: store)
        store.allocate(seed: 1)
        XCTAssertTrue(UnsafeBufferPointer(start: embed.loraA!.value, count: 200).allSatisfy { $0 == 0 })
        let b = Array(UnsafeBufferPointer(start: embed.loraB!.value, count: 160))
        let variance = b.reduce(0) { $0 + $1 * $1 } / Float(b.count)
        XCTAssertEqual(variance, 1, accuracy: 0.3)
    }
}
