import Kernels

/// Attentional pooling (CoCa; CONCH's `AttentionalPooler`): n learned queries attend to the
/// C-wide tokens of each sample through `nn.MultiheadAttention(d, H, kdim=C, vdim=C)`:
///
///     q̂  = ln_q(query)                                 (n, d)   the same for every sample
///     x̂  = ln_k(x)                                     (B·T, C)
///     Q  = q̂ W_qᵀ + b_q                               (n, d)
///     K  = x̂ W_kᵀ + b_k,   V = x̂ W_vᵀ + b_v           (B·T, d)
///     O_b = [softmax(Q_h K_bhᵀ / √(d/H)) V_bh]_h        (n, d)   head h owns columns h·d/H …
///     y_b = O_b W_oᵀ + b_o                              (n, d)   → y (B·n, d)
///
/// Parameters under `name`: `query (n, d)`, `ln_q.*` (d), `ln_k.*` (C), `attn.q_proj.*`
/// `(d, d)`, `attn.k_proj.*`, `attn.v_proj.*` `(d, C)`, `attn.out_proj.*` `(d, d)`. PyTorch
/// stores the three input weights as `attn.{q,k,v}_proj_weight` and their biases as one
/// `attn.in_proj_bias (3d)` = [b_q; b_k; b_v]; importers map them onto these names.
///
/// Backward (`dy` given): `dO = dy W_o`; per sample and head, with P the stored
/// probabilities, `dP = dO_h V_hᵀ`, `dV_h = Pᵀ dO_h`, `dS = P ⊙ (dP − rowsum(dP ⊙ P))`,
/// `dQ_h += dS K_h/√(d/H)` (summed over the batch: the queries are shared),
/// `dK_h = dSᵀ Q_h/√(d/H)` — the attention derivation of docs/model.md with n query rows;
/// then through the projections and both LayerNorms, `d query = ln_qᵀ(dQ W_q)`.
public final class AttentionalPooler {
    public let name: String
    public let width: Int
    public let contextWidth: Int
    public let heads: Int
    public let queries: Int
    public let query: Parameter
    public let queryNorm: LayerNormLayer
    public let keyNorm: LayerNormLayer
    public let qProj: Linear
    public let kProj: Linear
    public let vProj: Linear
    public let outProj: Linear

    /// T, the tokens per sample (shared with the owning tower).
    public let rowsPerSample: SampleRows
    private let arena: ActivationArena
    private var batch = 0, tokens = 0
    private let normedQuery: ActivationBuffer   // (n, d)
    private let q: ActivationBuffer             // (n, d)
    private let normedX: ActivationBuffer       // (B·T, C)
    private let k: ActivationBuffer             // (B·T, d)
    private let v: ActivationBuffer             // (B·T, d)
    private let probs: ActivationBuffer         // (B, H, n, T)
    private let context: ActivationBuffer       // (B·n, d)
    private let dContext: ActivationBuffer      // (B·n, d)
    private let dQ: ActivationBuffer            // (n, d)
    private let dK: ActivationBuffer            // (B·T, d)
    private let dV: ActivationBuffer            // (B·T, d)
    private let dProbs: ActivationBuffer        // (n, T)
    private let dScores: ActivationBuffer       // (n, T)
    private let dNormedX: ActivationBuffer      // (B·T, C)
    private let dNormedQuery: ActivationBuffer  // (n, d)
    private let dQuery: ActivationBuffer        // (n, d)

    public init(_ name: String, width d: Int, contextWidth C: Int, heads: Int, queries n: Int = 1,
                eps: Float, region: ParameterRegion, store: ParameterStore,
                rowsPerSample: SampleRows = SampleRows()) {
        precondition(d % heads == 0, "AttentionalPooler \(name): width \(d) is not a multiple of \(heads) heads")
        self.name = name
        self.width = d
        self.contextWidth = C
        self.heads = heads
        self.queries = n
        self.rowsPerSample = rowsPerSample
        let arena = store.activations
        self.arena = arena
        query = store.declare(name + ".query", shape: [n, d], region: region, initializer: .normal(std: 1))
        let queryRows = SampleRows(n)
        queryNorm = LayerNormLayer(name + ".ln_q", features: d, eps: eps, region: region, store: store,
                                   rowsPerSample: queryRows)
        keyNorm = LayerNormLayer(name + ".ln_k", features: C, eps: eps, region: region, store: store,
                                 rowsPerSample: rowsPerSample)
        qProj = Linear(name + ".attn.q_proj", in: d, out: d, region: region, store: store, rowsPerSample: queryRows)
        kProj = Linear(name + ".attn.k_proj", in: C, out: d, region: region, store: store, rowsPerSample: rowsPerSample)
        vProj = Linear(name + ".attn.v_proj", in: C, out: d, region: region, store: store, rowsPerSample: rowsPerSample)
        outProj = Linear(name + ".attn.out_proj", in: d, out: d, region: region, store: store)
        func perToken(_ suffix: String, _ width: Int) -> ActivationBuffer {
            arena.buffer(name + "." + suffix) { $0.samples * rowsPerSample.count * width }
        }
        func fixed(_ suffix: String, _ count: Int) -> ActivationBuffer {
            arena.buffer(name + "." + suffix) { _ in count }
        }
        normedQuery = fixed("normed_query", n * d)
        q = fixed("q", n * d)
        normedX = perToken("normed_x", C)
        k = perToken("k", d)
        v = perToken("v", d)
        probs = arena.buffer(name + ".probs") { $0.samples * heads * n * rowsPerSample.count }
        context = arena.buffer(name + ".context") { $0.samples * n * d }
        dContext = arena.buffer(name + ".d_context") { $0.samples * n * d }
        dQ = fixed("d_q", n * d)
        dK = perToken("d_k", d)
        dV = perToken("d_v", d)
        dProbs = arena.buffer(name + ".d_probs") { _ in n * rowsPerSample.count }
        dScores = arena.buffer(name + ".d_scores") { _ in n * rowsPerSample.count }
        dNormedX = perToken("d_normed_x", C)
        dNormedQuery = fixed("d_normed_query", n * d)
        dQuery = fixed("d_query", n * d)
    }

    /// Forward FLOPs (matrix products) for `batch` samples of `tokens` tokens.
    public func forwardFlops(batch: Int, tokens: Int) -> Double {
        qProj.forwardFlops(rows: queries) + 2 * kProj.forwardFlops(rows: batch * tokens)
            + Double(batch) * 2 * gemmFlops(m: queries, n: tokens, k: width) + outProj.forwardFlops(rows: batch * queries)
    }

    /// y (B·n, d) ← pooled queries over x (B·T, C). x must stay valid until `backward`.
    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, tokens T: Int) {
        let n = queries, d = width, H = heads, dh = d / H
        self.batch = batch
        self.tokens = T
        arena.reserve(samples: batch, rows: rowsPerSample, perSample: T)
        queryNorm.forward(query.value, normedQuery.data, rows: n)
        qProj.forward(normedQuery.data, q.data, rows: n)
        keyNorm.forward(x, normedX.data, rows: batch * T)
        kProj.forward(normedX.data, k.data, rows: batch * T)
        vProj.forward(normedX.data, v.data, rows: batch * T)
        let scale = 1 / Float(dh).squareRoot()
        for b in 0..<batch {
            for h in 0..<H {
                let p = probs.data + (b * H + h) * n * T                // (n, T)
                let kb = k.data + b * T * d + h * dh, vb = v.data + b * T * d + h * dh
                // S = Q_h K_bhᵀ·scale;  P = softmax_rows(S);  O = P V_bh
                gemm(.none, .transposed, m: n, n: T, k: dh, alpha: scale, a: q.data + h * dh, lda: d,
                     b: kb, ldb: d, beta: 0, c: p, ldc: T)
                softmaxForward(p, p, rows: n, cols: T)
                gemm(.none, .none, m: n, n: dh, k: T, a: p, lda: T, b: vb, ldb: d,
                     beta: 0, c: context.data + b * n * d + h * dh, ldc: d)
            }
        }
        outProj.forward(context.data, y, rows: batch * n)
    }

    /// dx (B·T, C) += ∂L/∂x given dy (B·n, d); parameter gradients accumulate.
    public func backward(_ dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>) {
        let n = queries, d = width, H = heads, dh = d / H, T = tokens, rows = batch * T
        dContext.data.update(repeating: 0, count: batch * n * d)
        outProj.backward(dy, dx: dContext.data)
        dQ.data.update(repeating: 0, count: n * d)
        let scale = 1 / Float(dh).squareRoot()
        for b in 0..<batch {
            for h in 0..<H {
                let p = probs.data + (b * H + h) * n * T                // (n, T)
                let kb = k.data + b * T * d + h * dh, vb = v.data + b * T * d + h * dh
                let dO = dContext.data + b * n * d + h * dh             // (n, dh), ld d
                // dP = dO V_bhᵀ (n, T);  dV_bh = Pᵀ dO (T, dh)
                gemm(.none, .transposed, m: n, n: T, k: dh, a: dO, lda: d, b: vb, ldb: d,
                     beta: 0, c: dProbs.data, ldc: T)
                gemm(.transposed, .none, m: T, n: dh, k: n, a: p, lda: T, b: dO, ldb: d,
                     beta: 0, c: dV.data + b * T * d + h * dh, ldc: d)
                // dS = P ⊙ (dP − rowsum(dP ⊙ P))
                dScores.data.update(repeating: 0, count: n * T)
                softmaxBackward(p, dProbs.data, dScores.data, rows: n, cols: T)
                // dQ_h += scale · dS K_bh (shared queries: summed over b);  dK_bh = scale · dSᵀ Q_h
                gemm(.none, .none, m: n, n: dh, k: T, alpha: scale, a: dScores.data, lda: T,
                     b: kb, ldb: d, beta: 1, c: dQ.data + h * dh, ldc: d)
                gemm(.transposed, .none, m: T, n: dh, k: n, alpha: scale, a: dScores.data, lda: T,
                     b: q.data + h * dh, ldb: d, beta: 0, c: dK.data + b * T * d + h * dh, ldc: d)
            }
        }
        dNormedX.data.update(repeating: 0, count: rows * contextWidth)
        kProj.backward(dK.data, dx: dNormedX.data)
        vProj.backward(dV.data, dx: dNormedX.data)
        keyNorm.backward(dNormedX.data, dx: dx)
        dNormedQuery.data.update(repeating: 0, count: n * d)
        qProj.backward(dQ.data, dx: dNormedQuery.data)
        dQuery.data.update(repeating: 0, count: n * d)
        queryNorm.backward(dNormedQuery.data, dx: dQuery.data)
        if let g = query.gradient { axpy(1, dQuery.data, g, count: n * d) }
    }
}
