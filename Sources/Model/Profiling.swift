import Kernels

/// Matrix-product floating-point operations of one training step, counted analytically
/// from the layer shapes: 2·m·n·k for every `gemm` the forward and the backward execute.
///
/// "Executed" is meant literally. A frozen base weight gets no weight gradient, so its
/// Linear's backward is the data gradient dX = dY·W alone (plus the four LoRA products
/// when it carries LoRA: dB, dh, dA and dX += dh·A); the patch embedding computes no
/// data gradient (pixels need none); a frozen tower runs no backward at all; causal
/// attention still multiplies full T×T blocks. Elementwise work (norms, softmax,
/// activations, the optimiser) is not counted. `GEMMStatistics` counts the same quantity
/// at run time; ModelTests checks that the two agree.
public struct TrainingFlops: Sendable, Equatable {
    public var forward: Double
    public var backward: Double

    public init(forward: Double = 0, backward: Double = 0) {
        self.forward = forward
        self.backward = backward
    }

    public var total: Double { forward + backward }

    public static func + (a: TrainingFlops, b: TrainingFlops) -> TrainingFlops {
        TrainingFlops(forward: a.forward + b.forward, backward: a.backward + b.backward)
    }

    public static func += (a: inout TrainingFlops, b: TrainingFlops) { a = a + b }
}

extension Linear {
    /// One forward and backward over `rows` rows; `inputGradient`: whether the caller asks
    /// for dX (a non-nil `dx` in `backward`).
    public func trainingFlops(rows: Int, inputGradient: Bool) -> TrainingFlops {
        var backward = 0.0
        if weight.isTrainable { backward += gemmFlops(m: outFeatures, n: inFeatures, k: rows) }   // dW
        if inputGradient { backward += gemmFlops(m: rows, n: inFeatures, k: outFeatures) }        // dX
        if let lora {
            let r = lora.rank
            backward += gemmFlops(m: outFeatures, n: r, k: rows)      // dB = s·dYᵀ h
                + gemmFlops(m: rows, n: r, k: outFeatures)            // dh = s·dY B
                + gemmFlops(m: r, n: inFeatures, k: rows)             // dA = dhᵀ x
            if inputGradient { backward += gemmFlops(m: rows, n: inFeatures, k: r) }   // dX += dh A
        }
        return TrainingFlops(forward: forwardFlops(rows: rows), backward: backward)
    }
}

extension TokenEmbedding {
    /// The gather is not a GEMM; with LoRA: y += s·h Bᵀ forward, dB and dh backward.
    public func trainingFlops(rows: Int) -> TrainingFlops {
        guard let lora else { return TrainingFlops() }
        let r = lora.rank
        return TrainingFlops(forward: forwardFlops(rows: rows),
                             backward: gemmFlops(m: width, n: r, k: rows) + gemmFlops(m: rows, n: r, k: width))
    }
}

extension MultiHeadAttention {
    /// Projections (each with dX) and, per sequence and head, S = QKᵀ and O = PV forward,
    /// dP = dO Vᵀ, dV = Pᵀ dO, dQ = dS K and dK = dSᵀ Q backward. `oneQuery`: one query
    /// row per sequence (a pooled last block): the output projection sees B rows and each
    /// product has one query row.
    public func trainingFlops(batch: Int, tokens: Int, oneQuery: Bool = false) -> TrainingFlops {
        let rows = batch * tokens
        var f = inputProjections.reduce(TrainingFlops()) { $0 + $1.trainingFlops(rows: rows, inputGradient: true) }
        f += outputProjection.trainingFlops(rows: oneQuery ? batch : rows, inputGradient: true)
        let product = Double(batch * heads) * gemmFlops(m: oneQuery ? 1 : tokens, n: tokens, k: headDim)
        // Recomputed probabilities: S = QKᵀ once more per head in the backward.
        let recomputed = !oneQuery && attentionProbabilities == .recomputed
        f += TrainingFlops(forward: 2 * product, backward: (recomputed ? 5 : 4) * product)
        return f
    }
}

extension MLP {
    public func trainingFlops(rows: Int) -> TrainingFlops {
        fc1.trainingFlops(rows: rows, inputGradient: true) + fc2.trainingFlops(rows: rows, inputGradient: true)
    }
}

extension TransformerBlock {
    /// `oneOutput`: the block computes one output row per sequence (`forward(…outputs:)`).
    public func trainingFlops(batch: Int, tokens: Int, oneOutput: Bool = false) -> TrainingFlops {
        attention.trainingFlops(batch: batch, tokens: tokens, oneQuery: oneOutput)
            + mlp.trainingFlops(rows: oneOutput ? batch : batch * tokens)
    }
}

/// Each block's `trainingFlops`, the last with one output row per sequence when `pooledLast`.
private func blocksFlops(_ blocks: [TransformerBlock], batch: Int, tokens: Int, pooledLast: Bool) -> TrainingFlops {
    blocks.enumerated().reduce(TrainingFlops()) { sum, item in
        sum + item.element.trainingFlops(batch: batch, tokens: tokens,
                                         oneOutput: pooledLast && item.offset == blocks.count - 1)
    }
}

extension AttentionalPooler {
    /// Projections, plus the two attention products per sample and head forward and four
    /// backward (dP, dV, dQ, dK), as `MultiHeadAttention`.
    public func trainingFlops(batch: Int, tokens: Int) -> TrainingFlops {
        var f = qProj.trainingFlops(rows: queries, inputGradient: true)
            + kProj.trainingFlops(rows: batch * tokens, inputGradient: true)
            + vProj.trainingFlops(rows: batch * tokens, inputGradient: true)
            + outProj.trainingFlops(rows: batch * queries, inputGradient: true)
        let product = Double(batch) * gemmFlops(m: queries, n: tokens, k: width)   // all heads
        f += TrainingFlops(forward: 2 * product, backward: 4 * product)
        return f
    }
}

extension VisionTransformer {
    /// Forward, and the backward `backward(dFeatures:dImages:)` runs (`imageGradient`:
    /// whether `dImages` is given).
    public func trainingFlops(batch: Int, imageGradient: Bool = false) -> TrainingFlops {
        let T = config.tokens
        var f = patchEmbedding.proj.trainingFlops(rows: batch * config.patchCount, inputGradient: imageGradient)
        f += blocksFlops(blocks, batch: batch, tokens: T, pooledLast: lastBlockPoolsOnly)
        if let p = attentionalPooler { f += p.trainingFlops(batch: batch, tokens: T) }
        if let head { f += head.trainingFlops(rows: batch, inputGradient: true) }
        return f
    }
}

extension TextTransformer {
    public func trainingFlops(batch: Int) -> TrainingFlops {
        let L = config.contextLength, S = config.sequenceLength
        var f = tokenEmbedding.trainingFlops(rows: batch * L)
        f += blocksFlops(blocks, batch: batch, tokens: S, pooledLast: lastBlockPoolsOnly)
        if let projection { f += projection.trainingFlops(rows: batch, inputGradient: true) }
        return f
    }
}

extension CLIPITHeads {
    /// `featureGradient`: whether `backward` gets a `dFeatures` buffer (the Linears that
    /// read v directly then compute dX too; the others always do).
    public func trainingFlops(batch: Int, featureGradient: Bool) -> TrainingFlops {
        let readsFeatures = [visionHead, projection.first].compactMap { $0 }
        return layers.reduce(TrainingFlops()) { sum, layer in
            let dx = readsFeatures.contains { $0 === layer } ? featureGradient : true
            return sum + layer.trainingFlops(rows: batch, inputGradient: dx)
        }
    }
}

/// Only the forward of a tower whose backward is skipped.
private func forwardOnly(_ f: TrainingFlops) -> TrainingFlops { TrainingFlops(forward: f.forward) }

extension UnimodalModel {
    /// One `forwardBackward` on `batch` images (without an image gradient).
    public func trainingFlops(batch: Int) -> TrainingFlops {
        let visionTrains = store.hasTrainableParameters(prefix: vision.prefix)
        let tower = vision.trainingFlops(batch: batch)
        return (visionTrains ? tower : forwardOnly(tower))
            + head.layer.trainingFlops(rows: batch, inputGradient: visionTrains)
    }
}

extension CLIPITModel {
    /// One `forwardBackward` on `batch` images and their paired reports (without an image
    /// gradient).
    public func trainingFlops(batch: Int) -> TrainingFlops {
        let visionTrains = store.hasTrainableParameters(prefix: vision.prefix)
        let tower = vision.trainingFlops(batch: batch)
        var f = (visionTrains ? tower : forwardOnly(tower))
            + heads.trainingFlops(batch: batch, featureGradient: visionTrains)
        if let text {
            let textTower = text.trainingFlops(batch: batch)
            f += store.hasTrainableParameters(prefix: text.prefix) ? textTower : forwardOnly(textTower)
        }
        return f
    }
}
