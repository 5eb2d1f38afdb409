#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Kernels

// Losses of CLIP-IT and of CLIP-style contrastive training. Every loss here is a sum of
// per-sample terms divided by a `normalizer` that the caller passes in: the GLOBAL batch
// size. Under data parallelism each rank sees only its local rows but divides by the
// global batch size, so the sum over ranks of the returned values is the global batch
// mean, and the allreduced sum of the gradients is the single-rank gradient (see
// docs/training-math.md). Forward saves what the backward needs; backward *adds*
// `scale · ∂loss/∂input` into the gradient buffers (`scale` carries a loss weight such as λ).

/// What the cross-entropy is applied to.
public enum CrossEntropyMode: String, NamedChoice, Equatable {
    /// ℓ = −log softmax(z)_y: cross-entropy on the logits (the method).
    case logits
    /// ℓ = −log softmax(softmax(z))_y: the reference implementation's double softmax
    /// (it feeds softmax outputs to a cross-entropy that applies its own softmax).
    /// Provided only to reproduce the reference; its gradients are squashed by the inner
    /// softmax and the loss can never fall below −log(e/(e + C − 1)).
    case referenceDoubleSoftmax
}

/// Softmax cross-entropy over a batch of logits z (rows, C) with integer labels:
///
///     loss = (1/N) Σ_i ℓ_i,   ℓ_i = −log softmax(u_i)_{y_i},   u = z  or  softmax(z)
///
///     ∂loss/∂u_i = (softmax(u_i) − onehot(y_i)) / N
///
/// with N = `normalizer`, computed through a max-shifted log-softmax (stable for any
/// finite logits). In `.referenceDoubleSoftmax` mode the gradient continues through the
/// inner softmax: ∂/∂z = p ⊙ (g − ⟨g, p⟩), p = softmax(z), g = ∂/∂p.
///
/// Unlabelled rows: a row whose label is `CrossEntropyLoss.unlabelled` (−1) is left out of
/// the sum, ℓ_i = 0 and ∂ℓ_i/∂z_i = 0 (PyTorch's `ignore_index=-1` with `reduction='sum'`),
/// so a batch can mix labelled images with unlabelled ones that only the distillation terms
/// see (CLIP-IT.md, decision 9). The sum is still divided by `normalizer`, which is then the
/// GLOBAL number of labelled rows, so the rank shares still add up to the labelled mean.
public final class CrossEntropyLoss {
    /// The label of a row that has none: it contributes nothing to the loss or the gradient.
    public static let unlabelled: Int32 = -1

    public let classes: Int
    public var mode: CrossEntropyMode

    private let arena: ActivationArena
    private var rows = 0
    private var normalizer = 1
    private var labels: UnsafePointer<Int32>?
    private var forwardMode = CrossEntropyMode.logits
    private let probabilities: ActivationBuffer      // (rows, C) softmax(z), double-softmax mode
    private let logProbabilities: ActivationBuffer   // (rows, C) log softmax(u)
    private let dProbabilities: ActivationBuffer     // (rows, C) ∂/∂p, double-softmax mode

    /// `arena`: the model's (`store.activations`); a loss used on its own gets its own.
    public init(classes: Int, mode: CrossEntropyMode = .logits, name: String = "loss.cross_entropy",
                arena: ActivationArena = ActivationArena()) {
        precondition(classes > 0, "CrossEntropyLoss: classes must be positive")
        self.classes = classes
        self.mode = mode
        self.arena = arena
        let perRow: (ActivationShape) -> Int = { $0.samples * classes }
        probabilities = arena.buffer(name + ".probabilities", size: perRow)
        logProbabilities = arena.buffer(name + ".log_probabilities", size: perRow)
        dProbabilities = arena.buffer(name + ".d_probabilities", size: perRow)
    }

    /// Σ_i ℓ_i / normalizer over `rows` rows of `logits` (rows, C). `labels` (rows) must
    /// hold values in 0..<C or `unlabelled` (−1: the row is skipped) and stay valid until
    /// `backward`. `normalizer` counts the labelled rows of the global batch.
    public func forward(logits: UnsafePointer<Float>, labels: UnsafePointer<Int32>, rows: Int,
                        normalizer: Int) -> Float {
        precondition(normalizer > 0, "CrossEntropyLoss: normalizer must be positive")
        let c = classes
        arena.reserve(samples: rows)
        self.rows = rows
        self.normalizer = normalizer
        self.labels = labels
        forwardMode = mode
        switch mode {
        case .logits:
            logSoftmaxForward(logits, logProbabilities.data, rows: rows, cols: c)
        case .referenceDoubleSoftmax:
            softmaxForward(logits, probabilities.data, rows: rows, cols: c)
            logSoftmaxForward(probabilities.data, logProbabilities.data, rows: rows, cols: c)
        }
        var sum = 0.0
        let lp = logProbabilities.data
        for i in 0..<rows where labels[i] != Self.unlabelled {
            let y = Int(labels[i])
            precondition(y >= 0 && y < c, "CrossEntropyLoss: label \(y) of row \(i) is neither in 0..<\(c) "
                         + "nor \(Self.unlabelled) (unlabelled)")
            sum -= Double(lp[i * c + y])
        }
        return Float(sum / Double(normalizer))
    }

    /// dLogits (rows, C) += scale · ∂loss/∂z (unlabelled rows are left as they are).
    public func backward(dLogits: UnsafeMutablePointer<Float>, scale: Float = 1) {
        guard let labels else { preconditionFailure("CrossEntropyLoss: backward before forward") }
        let c = classes
        let s = scale / Float(normalizer)
        let lp = logProbabilities.data
        // g = s·(softmax(u) − onehot(y)) goes straight into dLogits (u = z) or into ∂/∂p.
        let mode = forwardMode
        let g = mode == .logits ? dLogits : dProbabilities.data
        if mode == .referenceDoubleSoftmax { g.update(repeating: 0, count: rows * c) }
        for i in 0..<rows where labels[i] != Self.unlabelled {
            let row = i * c
            for j in 0..<c { g[row + j] += s * expf(lp[row + j]) }
            g[row + Int(labels[i])] -= s
        }
        if mode == .referenceDoubleSoftmax {
            softmaxBackward(probabilities.data, dProbabilities.data, dLogits, rows: rows, cols: c)
        }
    }
}

/// The CLIP-IT distillation term, mean over the batch of one minus the cosine similarity
/// between the projected vision feature t̂ and the paired report's embedding t:
///
///     loss = (1/N) Σ_i (1 − cos_i),   cos_i = ⟨t̂_i, t_i⟩ / (max(‖t̂_i‖, ε)·max(‖t_i‖, ε))
///
///     ∂(1 − cos_i)/∂t̂_i = −(t_i/(‖t̂_i‖‖t_i‖) − cos_i · t̂_i/‖t̂_i‖²)     (and symmetrically for t_i)
///
/// (ε = 1e-8 as `torch.nn.functional.cosine_similarity`; below ε the clamped norm is a
/// constant). Gradients flow to both sides ("mutual" alignment) unless `backward` is given
/// no `dTarget` (stop-gradient on t: the frozen-text ablation).
public final class CosineDistillationLoss {
    public let width: Int
    public let epsilon: Float

    private var rows = 0
    private var normalizer = 1
    private var predicted: UnsafePointer<Float>?
    private var target: UnsafePointer<Float>?
    private let arena: ActivationArena
    private let predictedNorms: ActivationBuffer     // (rows) max(‖t̂_i‖, ε)
    private let targetNorms: ActivationBuffer        // (rows) max(‖t_i‖, ε)
    private let cosines: ActivationBuffer            // (rows)
    private let predictedClamped: ActivationBuffer   // (rows) 1 if ‖t̂_i‖ < ε
    private let targetClamped: ActivationBuffer      // (rows) 1 if ‖t_i‖ < ε

    /// `arena`: the model's (`store.activations`); a loss used on its own gets its own.
    public init(width: Int, epsilon: Float = 1e-8, name: String = "loss.distillation",
                arena: ActivationArena = ActivationArena()) {
        self.width = width
        self.epsilon = epsilon
        self.arena = arena
        let perRow: (ActivationShape) -> Int = { $0.samples }
        predictedNorms = arena.buffer(name + ".predicted_norms", size: perRow)
        targetNorms = arena.buffer(name + ".target_norms", size: perRow)
        cosines = arena.buffer(name + ".cosines", size: perRow)
        predictedClamped = arena.buffer(name + ".predicted_clamped", size: perRow)
        targetClamped = arena.buffer(name + ".target_clamped", size: perRow)
    }

    /// Σ_i (1 − cos_i) / normalizer for t̂ = `predicted` and t = `target`, both (rows, D),
    /// which must stay valid until `backward`.
    public func forward(predicted: UnsafePointer<Float>, target: UnsafePointer<Float>, rows: Int,
                        normalizer: Int) -> Float {
        precondition(normalizer > 0, "CosineDistillationLoss: normalizer must be positive")
        arena.reserve(samples: rows)
        self.rows = rows
        self.normalizer = normalizer
        self.predicted = predicted
        self.target = target
        let d = width
        var sum = 0.0
        for i in 0..<rows {
            let a = predicted + i * d, b = target + i * d
            let na = Float(sumOfSquares(a, count: d).squareRoot())
            let nb = Float(sumOfSquares(b, count: d).squareRoot())
            predictedClamped.data[i] = na < epsilon ? 1 : 0
            targetClamped.data[i] = nb < epsilon ? 1 : 0
            let ca = max(na, epsilon), cb = max(nb, epsilon)
            var ab = 0.0
            for j in 0..<d { ab += Double(a[j]) * Double(b[j]) }
            let cosine = Float(ab / (Double(ca) * Double(cb)))
            predictedNorms.data[i] = ca
            targetNorms.data[i] = cb
            cosines.data[i] = cosine
            sum += 1 - Double(cosine)
        }
        return Float(sum / Double(normalizer))
    }

    /// dPredicted (rows, D) += scale · ∂loss/∂t̂ and, unless `dTarget` is nil (stop-gradient
    /// on t), dTarget (rows, D) += scale · ∂loss/∂t.
    public func backward(dPredicted: UnsafeMutablePointer<Float>?,
                         dTarget: UnsafeMutablePointer<Float>?, scale: Float = 1) {
        guard let predicted, let target else {
            preconditionFailure("CosineDistillationLoss: backward before forward")
        }
        let d = width
        let s = scale / Float(normalizer)
        for i in 0..<rows {
            let a = predicted + i * d, b = target + i * d
            let na = predictedNorms.data[i], nb = targetNorms.data[i], cosine = cosines.data[i]
            let inverseProduct = 1 / (na * nb)
            // ∂(−cos)/∂a = −b/(na nb) + cos·a/na² (the second term vanishes when na is clamped).
            if let dPredicted {
                let da = dPredicted + i * d
                let self_ = predictedClamped.data[i] == 0 ? cosine / (na * na) : 0
                for j in 0..<d { da[j] += s * (self_ * a[j] - inverseProduct * b[j]) }
            }
            if let dTarget {
                let db = dTarget + i * d
                let self_ = targetClamped.data[i] == 0 ? cosine / (nb * nb) : 0
                for j in 0..<d { db[j] += s * (self_ * b[j] - inverseProduct * a[j]) }
            }
        }
    }
}

/// CLIP's symmetric InfoNCE loss (Radford et al. 2021) over a global batch of N pairs,
/// with a learnable temperature τ = 1/exp(s):
///
///     Î = rows of I / ‖·‖,  T̂ = rows of T / ‖·‖,   S = e^s · Î T̂ᵀ  (N × N, one GEMM)
///     loss = (1/2N) Σ_i [ −log softmax(S_i,:)_i  −  log softmax(S_:,i)_i ]
///
///     G = ∂loss/∂S = (P_row + P_col − 2·Id) / 2N,   P_row = row softmax, P_col = column softmax
///     ∂loss/∂Î = e^s · G T̂,   ∂loss/∂T̂ = e^s · Gᵀ Î,   ∂loss/∂s = Σ_ij G_ij S_ij
///
/// then through the L2 normalisations. The logit scale is used as min(s, ln 100)
/// (`maximumLogitScale`) and gets no gradient above the cap; CLIP also clamps the
/// parameter itself after every optimiser step (`clampLogitScale`). Its initial value
/// is ln(1/0.07) (`initialLogitScale`).
///
/// Data parallelism: every rank passes the all-gathered (N, D) embeddings of the whole
/// global batch and the row range `localRows` it computed itself. `forward` returns this
/// rank's share of the loss (the row terms i ∈ localRows and the column terms i ∈ localRows)
/// and `backward` yields the full ∂loss/∂I and ∂loss/∂T for the local rows only (each
/// local embedding receives the gradient from every row and column it appears in) and
/// the share Σ_{i ∈ localRows, j} G_ij S_ij of ∂loss/∂s. Summed over ranks, the losses and
/// the logit-scale gradients add up to the single-rank values exactly, and each rank
/// back-propagates the complete gradient of its own embeddings, so the allreduced sum of
/// the parameter gradients equals the single-rank gradient. With one rank,
/// `localRows = 0..<N`.
public final class SymmetricInfoNCELoss {
    /// ln(1/0.07), CLIP's initial logit scale.
    public static let initialLogitScale = Float(log(1 / 0.07))
    /// ln 100: the logit scale is clamped here, so the temperature never drops below 0.01.
    public static let maximumLogitScale = Float(log(100.0))

    /// CLIP's post-step clamp of the logit-scale parameter to [0, ln 100].
    public static func clampLogitScale(_ value: UnsafeMutablePointer<Float>) {
        value.pointee = min(max(value.pointee, 0), maximumLogitScale)
    }

    public let width: Int

    private let arena: ActivationArena
    private var n = 0
    private var localRows: Range<Int> = 0..<0
    private var logitScale: Float = 0
    private var exponentScale: Float = 1
    private let normalizedImage: ActivationBuffer       // (N, D) Î
    private let normalizedText: ActivationBuffer        // (N, D) T̂
    private let imageNorms: ActivationBuffer            // (N)
    private let textNorms: ActivationBuffer             // (N)
    private let rowProbabilities: ActivationBuffer      // (N, N) softmax over j of S_ij
    private let columnProbabilities: ActivationBuffer   // (N, N) [j, i] = softmax over i of S_ij
    private let cosines: ActivationBuffer               // (N, N) Î T̂ᵀ
    private let gradientRows: ActivationBuffer          // (n_local, N) e^s·G[local, :]
    private let gradientColumns: ActivationBuffer       // (n_local, N) e^s·Gᵀ[local, :]
    private let dNormalized: ActivationBuffer           // (n_local, D)

    /// `arena`: the model's (`store.activations`); a loss used on its own gets its own.
    /// N is the arena's global batch, n_local its local one.
    public init(width d: Int, name: String = "loss.info_nce", arena: ActivationArena = ActivationArena()) {
        width = d
        self.arena = arena
        normalizedImage = arena.buffer(name + ".normalized_image") { $0.globalSamples * d }
        normalizedText = arena.buffer(name + ".normalized_text") { $0.globalSamples * d }
        imageNorms = arena.buffer(name + ".image_norms") { $0.globalSamples }
        textNorms = arena.buffer(name + ".text_norms") { $0.globalSamples }
        rowProbabilities = arena.buffer(name + ".row_probabilities") { $0.globalSamples * $0.globalSamples }
        columnProbabilities = arena.buffer(name + ".column_probabilities") { $0.globalSamples * $0.globalSamples }
        cosines = arena.buffer(name + ".cosines") { $0.globalSamples * $0.globalSamples }
        gradientRows = arena.buffer(name + ".gradient_rows") { $0.samples * $0.globalSamples }
        gradientColumns = arena.buffer(name + ".gradient_columns") { $0.samples * $0.globalSamples }
        dNormalized = arena.buffer(name + ".d_normalized") { $0.samples * d }
    }

    /// This rank's share of the loss (see the type's documentation). `image` and `text`
    /// are the (N, D) embeddings of the global batch, `logitScale` is s (before the cap).
    public func forward(image: UnsafePointer<Float>, text: UnsafePointer<Float>, rows: Int,
                        localRows: Range<Int>, logitScale: Float) -> Float {
        precondition(localRows.lowerBound >= 0 && localRows.upperBound <= rows,
                     "SymmetricInfoNCELoss: local rows \(localRows) outside 0..<\(rows)")
        let d = width
        arena.reserve(samples: localRows.count, globalSamples: rows)
        n = rows
        self.localRows = localRows
        self.logitScale = logitScale
        exponentScale = expf(min(logitScale, Self.maximumLogitScale))
        l2NormalizeForward(image, normalizedImage.data, norms: imageNorms.data, rows: n, cols: d)
        l2NormalizeForward(text, normalizedText.data, norms: textNorms.data, rows: n, cols: d)
        // cos = Î T̂ᵀ (N, N); S = e^s·cos; P_row = softmax_j S; P_colᵀ = softmax_j Sᵀ.
        gemm(.none, .transposed, m: n, n: n, k: d, a: normalizedImage.data, lda: d,
             b: normalizedText.data, ldb: d, beta: 0, c: cosines.data, ldc: n)
        let rp = rowProbabilities.data, cp = columnProbabilities.data, cs = cosines.data
        for i in 0..<n {
            for j in 0..<n {
                let v = exponentScale * cs[i * n + j]
                rp[i * n + j] = v
                cp[j * n + i] = v
            }
        }
        // Row i of the log-softmax gives the loss terms; keep the probabilities.
        var sum = 0.0
        for i in localRows {
            sum -= Double(logSoftmaxDiagonal(rp + i * n, index: i))
            sum -= Double(logSoftmaxDiagonal(cp + i * n, index: i))
        }
        for i in 0..<n {
            softmaxForward(rp + i * n, rp + i * n, rows: 1, cols: n)
            softmaxForward(cp + i * n, cp + i * n, rows: 1, cols: n)
        }
        return Float(sum / Double(2 * n))
    }

    /// log softmax(x)_index of one row of length n (max-shifted).
    private func logSoftmaxDiagonal(_ x: UnsafePointer<Float>, index: Int) -> Float {
        var m = -Float.infinity
        for j in 0..<n where x[j] > m { m = x[j] }
        var s: Float = 0
        for j in 0..<n { s += expf(x[j] - m) }
        return x[index] - m - logf(s)
    }

    /// Adds scale·∂loss/∂I and scale·∂loss/∂T for the local rows into `dImage` and `dText`
    /// (each (localRows.count, D), row 0 = global row localRows.lowerBound; either may be
    /// nil), and this rank's share of scale·∂loss/∂s into `dLogitScale`.
    public func backward(dImage: UnsafeMutablePointer<Float>?, dText: UnsafeMutablePointer<Float>?,
                         dLogitScale: UnsafeMutablePointer<Float>?, scale: Float = 1) {
        let d = width, local = localRows.count, first = localRows.lowerBound
        guard local > 0 else { return }
        let rp = rowProbabilities.data, cp = columnProbabilities.data, cs = cosines.data
        let g = scale / Float(2 * n)
        // e^s·G restricted to the local rows (GR) and local columns (GC, stored transposed):
        // G_ij = g·(P_row[i, j] + P_col[i, j] − 2δ_ij), with P_col[i, j] = cp[j, i].
        let gr = gradientRows.data, gc = gradientColumns.data
        var dScale = 0.0
        for li in 0..<local {
            let i = first + li
            for j in 0..<n {
                let gij = g * (rp[i * n + j] + cp[j * n + i] - (i == j ? 2 : 0))
                gr[li * n + j] = exponentScale * gij
                dScale += Double(gij) * Double(exponentScale * cs[i * n + j])
                let gji = g * (rp[j * n + i] + cp[i * n + j] - (i == j ? 2 : 0))
                gc[li * n + j] = exponentScale * gji
            }
        }
        if let dImage {
            // ∂/∂Î_local = e^s·G[local, :] T̂  (local, D), then through the normalisation.
            gemm(.none, .none, m: local, n: d, k: n, a: gr, lda: n, b: normalizedText.data, ldb: d,
                 beta: 0, c: dNormalized.data, ldc: d)
            l2NormalizeBackward(normalizedImage.data + first * d, dNormalized.data,
                                norms: imageNorms.data + first, dImage, rows: local, cols: d)
        }
        if let dText {
            // ∂/∂T̂_local = e^s·G[:, local]ᵀ Î  (local, D).
            gemm(.none, .none, m: local, n: d, k: n, a: gc, lda: n, b: normalizedImage.data, ldb: d,
                 beta: 0, c: dNormalized.data, ldc: d)
            l2NormalizeBackward(normalizedText.data + first * d, dNormalized.data,
                                norms: textNorms.data + first, dText, rows: local, cols: d)
        }
        // S = e^min(s, cap)·cos: ∂S/∂s = S below the cap, 0 above it.
        if let dLogitScale, logitScale <= Self.maximumLogitScale {
            dLogitScale.pointee += Float(dScale)
        }
    }
}
