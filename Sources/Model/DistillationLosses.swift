#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Kernels

// The distillation terms of the collapse-free extensions (CLIP-IT.md, decision 8): soft
// targets from a text teacher (`clipit-kd`) and InfoNCE against fixed report embeddings
// (`clipit-contrastive`). Same conventions as Losses.swift: the returned value is a sum of
// per-row terms divided by the caller's `normalizer` (the GLOBAL batch size), so the values
// and the gradients of the ranks' local rows add up to the single-rank ones; forward saves
// what the backward needs in arena buffers; backward *adds* `scale · ∂loss/∂input`.

/// Knowledge distillation from soft targets (Hinton et al. 2015, "Distilling the knowledge
/// in a neural network"), student logits z and teacher logits s, both (rows, C), at
/// temperature T:
///
///     loss = (1/N) Σ_i T² · KL(p_i ‖ q_i),   p_i = softmax(s_i/T),   q_i = softmax(z_i/T)
///          = (1/N) Σ_i T² Σ_c p_ic (log p_ic − log q_ic)
///
///     ∂loss/∂z_i = T · (q_i − p_i) / N
///
/// with N = `normalizer`. Both log-probabilities come from a max-shifted log-softmax (finite
/// for any finite logits; a p_ic that underflows to 0 contributes 0, its limit). The T²
/// factor keeps the gradient's size independent of T, as Hinton et al. recommend. The
/// teacher is a constant: it gets no gradient. KL ≥ 0, with equality (loss and gradient
/// exactly 0) when z = s.
public final class SoftTargetDistillationLoss {
    public let classes: Int

    private let arena: ActivationArena
    private var rows = 0
    private var normalizer = 1
    private var temperature: Float = 1
    private var hasForward = false
    private let studentLogProbabilities: ActivationBuffer   // (rows, C) log softmax(z/T)
    private let teacherLogProbabilities: ActivationBuffer   // (rows, C) log softmax(s/T)

    /// `arena`: the model's (`store.activations`); a loss used on its own gets its own.
    public init(classes: Int, name: String = "loss.soft_target", arena: ActivationArena = ActivationArena()) {
        precondition(classes > 0, "SoftTargetDistillationLoss: classes must be positive")
        self.classes = classes
        self.arena = arena
        let perRow: (ActivationShape) -> Int = { $0.samples * classes }
        studentLogProbabilities = arena.buffer(name + ".student_log_probabilities", size: perRow)
        teacherLogProbabilities = arena.buffer(name + ".teacher_log_probabilities", size: perRow)
    }

    /// Σ_i T²·KL(softmax(s_i/T) ‖ softmax(z_i/T)) / normalizer for z = `logits` and
    /// s = `teacher`, both (rows, C). The loss keeps both log-softmaxes, so neither pointer
    /// is read after `forward` returns.
    public func forward(logits: UnsafePointer<Float>, teacher: UnsafePointer<Float>, rows: Int,
                        temperature: Float, normalizer: Int) -> Float {
        precondition(normalizer > 0, "SoftTargetDistillationLoss: normalizer must be positive")
        precondition(temperature > 0 && temperature.isFinite,
                     "SoftTargetDistillationLoss: temperature \(temperature) must be positive and finite")
        let c = classes
        arena.reserve(samples: rows)
        self.rows = rows
        self.normalizer = normalizer
        self.temperature = temperature
        hasForward = true
        let student = studentLogProbabilities.data, target = teacherLogProbabilities.data
        // z/T and s/T (divided, as PyTorch's `z / T`), then the log-softmax in place.
        for k in 0..<(rows * c) {
            student[k] = logits[k] / temperature
            target[k] = teacher[k] / temperature
        }
        logSoftmaxForward(student, student, rows: rows, cols: c)
        logSoftmaxForward(target, target, rows: rows, cols: c)
        var sum = 0.0
        for k in 0..<(rows * c) {
            let logP = Double(target[k])
            sum += exp(logP) * (logP - Double(student[k]))
        }
        let t = Double(temperature)
        return Float(t * t * sum / Double(normalizer))
    }

    /// dLogits (rows, C) += scale · ∂loss/∂z = scale · T · (softmax(z/T) − softmax(s/T)) / N.
    public func backward(dLogits: UnsafeMutablePointer<Float>, scale: Float = 1) {
        precondition(hasForward, "SoftTargetDistillationLoss: backward before forward")
        let s = scale * temperature / Float(normalizer)
        let student = studentLogProbabilities.data, target = teacherLogProbabilities.data
        for k in 0..<(rows * classes) {
            dLogits[k] += s * (expf(student[k]) - expf(target[k]))
        }
    }
}

/// InfoNCE against fixed targets with several positives per row (the contrastive
/// representation distillation of Tian et al. 2020, "Contrastive representation
/// distillation", with the multi-positive denominator of Khosla et al. 2020, SupCon):
/// predicted t̂ (rows, D) of this rank's rows, targets t (N, D) of the whole global batch,
/// which are constants (stop-gradient), and an ID per row; rows with equal IDs (images
/// paired with the same report) are positives of each other.
///
///     u_i = t̂_i / max(‖t̂_i‖, ε),   w_j = t_j / max(‖t_j‖, ε),   s_ij = ⟨u_i, w_j⟩ / τ
///     loss = (1/N') Σ_i ℓ_i,   ℓ_i = −log( Σ_{j ∈ P(i)} e^{s_ij} / Σ_j e^{s_ij} ),
///     P(i) = { j : id_j = id_i }
///
/// with N' = `normalizer` (the global batch). With p_i = softmax_j(s_i) over all N targets
/// and q_i the softmax restricted to P(i) (0 outside it), ℓ_i = LSE_j(s_ij) − LSE_{P(i)}(s_ij)
/// and
///
///     ∂ℓ_i/∂s_ij = p_ij − q_ij,   g_i = ∂ℓ_i/∂u_i = (1/τ) Σ_j (p_ij − q_ij) w_j
///     ∂ℓ_i/∂t̂_i = (g_i − ⟨g_i, u_i⟩ u_i) / ‖t̂_i‖        (‖t̂_i‖ ≥ ε)
///               = g_i / ε                               (‖t̂_i‖ < ε: the clamp is constant)
///
/// (the second case is PyTorch's gradient of `F.normalize(x, eps=ε)`). Each log-sum-exp is
/// shifted by its own maximum, so the loss is finite for any τ > 0 even when the positives
/// score far below the other targets. With a single positive per row this is the
/// cross-entropy of the scores with the positive's index as the label.
///
/// The scores (rows, N) come from one GEMM. Buffers are sized by the arena's `samples`
/// (this rank's rows) and `globalSamples` (N): `forward` reserves both, so a model using
/// this loss should reserve `globalSamples` ≥ N before its own forward (as
/// `TrainableModel` does), since growing the arena in the middle of a forward discards
/// the activations already saved.
///
/// Data parallelism: every rank passes the all-gathered targets and IDs of the global batch
/// and its own rows; the row terms are independent, so the ranks' losses add up to the
/// single-rank loss and each rank gets the complete gradient of its own rows.
public final class ContrastiveTargetLoss {
    public let width: Int
    public let epsilon: Float

    private let arena: ActivationArena
    private var rows = 0
    private var targetCount = 0
    private var normalizer = 1
    private var temperature: Float = 1
    private var hasForward = false
    private let normalizedPredicted: ActivationBuffer   // (rows, D) u
    private let predictedNorms: ActivationBuffer        // (rows) ‖t̂_i‖ (unclamped)
    private let normalizedTargets: ActivationBuffer     // (N, D) w
    private let targetNorms: ActivationBuffer           // (N) ‖t_j‖ (unclamped)
    private let scores: ActivationBuffer                // (rows, N) s = u wᵀ / τ
    private let scoreGradients: ActivationBuffer        // (rows, N) p − q = ∂ℓ_i/∂s_ij
    private let dNormalized: ActivationBuffer           // (rows, D) ∂loss/∂u

    /// `arena`: the model's (`store.activations`); a loss used on its own gets its own.
    /// ε = 1e-8 as `torch.nn.functional.cosine_similarity`.
    public init(width: Int, epsilon: Float = 1e-8, name: String = "loss.contrastive",
                arena: ActivationArena = ActivationArena()) {
        precondition(width > 0, "ContrastiveTargetLoss: width must be positive")
        self.width = width
        self.epsilon = epsilon
        self.arena = arena
        let d = width
        normalizedPredicted = arena.buffer(name + ".normalized_predicted") { $0.samples * d }
        predictedNorms = arena.buffer(name + ".predicted_norms") { $0.samples }
        normalizedTargets = arena.buffer(name + ".normalized_targets") { $0.globalSamples * d }
        targetNorms = arena.buffer(name + ".target_norms") { $0.globalSamples }
        scores = arena.buffer(name + ".scores") { $0.samples * $0.globalSamples }
        scoreGradients = arena.buffer(name + ".score_gradients") { $0.samples * $0.globalSamples }
        dNormalized = arena.buffer(name + ".d_normalized") { $0.samples * d }
    }

    /// Σ_i ℓ_i / normalizer for t̂ = `predicted` (rows, D) with IDs `rowIDs` (rows), against
    /// t = `targets` (targetCount, D) with IDs `targetIDs` (targetCount). Every row's ID must
    /// occur among `targetIDs` (a row needs a positive). The loss keeps what `backward`
    /// needs (u, w, ‖t̂_i‖, p − q), so no input is read after `forward` returns.
    public func forward(predicted: UnsafePointer<Float>, rowIDs: UnsafePointer<Int32>, rows: Int,
                        targets: UnsafePointer<Float>, targetIDs: UnsafePointer<Int32>, targetCount: Int,
                        temperature: Float, normalizer: Int) -> Float {
        precondition(normalizer > 0, "ContrastiveTargetLoss: normalizer must be positive")
        precondition(temperature > 0 && temperature.isFinite,
                     "ContrastiveTargetLoss: temperature \(temperature) must be positive and finite")
        let d = width, n = targetCount
        arena.reserve(samples: rows, globalSamples: n)
        self.rows = rows
        self.targetCount = n
        self.normalizer = normalizer
        self.temperature = temperature
        hasForward = true
        let u = normalizedPredicted.data, w = normalizedTargets.data
        l2NormalizeForward(predicted, u, norms: predictedNorms.data, rows: rows, cols: d, eps: epsilon)
        l2NormalizeForward(targets, w, norms: targetNorms.data, rows: n, cols: d, eps: epsilon)
        // S = u wᵀ / τ  (rows, N).
        gemm(.none, .transposed, m: rows, n: n, k: d, alpha: 1 / temperature, a: u, lda: d,
             b: w, ldb: d, beta: 0, c: scores.data, ldc: n)
        var sum = 0.0
        for i in 0..<rows {
            let id = rowIDs[i]
            let s = scores.data + i * n, g = scoreGradients.data + i * n   // (N), (N)
            // Maxima over all targets (m) and over the positives (mPositive).
            var m = -Float.infinity, mPositive = -Float.infinity
            for j in 0..<n {
                m = max(m, s[j])
                if targetIDs[j] == id { mPositive = max(mPositive, s[j]) }
            }
            precondition(mPositive > -Float.infinity,
                         "ContrastiveTargetLoss: row \(i) has ID \(id), which is not among the \(n) target IDs; "
                         + "pass the targets of the whole global batch, this rank's rows included")
            // g_j ← e^{s_j − m}; the sums in Double.
            var all = 0.0, positive = 0.0
            for j in 0..<n {
                let e = expf(s[j] - m)
                g[j] = e
                all += Double(e)
                if targetIDs[j] == id { positive += Double(expf(s[j] - mPositive)) }
            }
            // ℓ_i = (m + log Σ_j e^{s_j − m}) − (m⁺ + log Σ_{P(i)} e^{s_j − m⁺}).
            sum += (Double(m) + log(all)) - (Double(mPositive) + log(positive))
            // g_j ← p_j − q_j.
            let inverseAll = Float(1 / all), inversePositive = Float(1 / positive)
            for j in 0..<n {
                g[j] *= inverseAll
                if targetIDs[j] == id { g[j] -= expf(s[j] - mPositive) * inversePositive }
            }
        }
        return Float(sum / Double(normalizer))
    }

    /// dPredicted (rows, D) += scale · ∂loss/∂t̂ (the targets get no gradient).
    public func backward(dPredicted: UnsafeMutablePointer<Float>, scale: Float = 1) {
        precondition(hasForward, "ContrastiveTargetLoss: backward before forward")
        let d = width, n = targetCount
        // ∂loss/∂u = (scale / (τ N')) · (P − Q) w   (rows, D), then through the normalisation.
        gemm(.none, .none, m: rows, n: d, k: n, alpha: scale / (temperature * Float(normalizer)),
             a: scoreGradients.data, lda: n, b: normalizedTargets.data, ldb: d,
             beta: 0, c: dNormalized.data, ldc: d)
        l2NormalizeBackward(normalizedPredicted.data, dNormalized.data, norms: predictedNorms.data,
                            dPredicted, rows: rows, cols: d, eps: epsilon)
    }
}
