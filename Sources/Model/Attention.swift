import Dispatch
import Kernels

/// How the query/key/value projections are stored.
public enum QKVLayout: String, NamedChoice {
    /// One Linear E→3E (timm `attn.qkv`, output projection `attn.proj`).
    case fused
    /// Three Linears E→E (HF `q_proj`, `k_proj`, `v_proj`, output projection `out_proj`).
    case separate
}

/// What attention keeps of its probabilities P = softmax(QKᵀ/√d) for the backward.
public enum AttentionProbabilities: String, NamedChoice {
    /// Every (T, T) matrix: B·H·T² floats per layer, read back by the backward.
    case stored
    /// Two numbers per row, the maximum and 1/Σ of the softmax; the backward recomputes
    /// S = QKᵀ/√d with the same product and P from them, bit for bit the stored P
    /// (FlashAttention's recomputation). Saves B·H·T² floats per layer for one more
    /// T×T×d product per head.
    case recomputed
}

/// Multi-head self-attention (Vaswani et al. 2017) over B sequences of T tokens:
///
///     [Q K V] = x W_qkvᵀ + b_qkv                     (B·T, 3E), head h uses columns h·d..<(h+1)·d
///     S_bh    = Q_bh K_bhᵀ / √d  (+ −∞ on masked keys)  (T, T)
///     P_bh    = softmax_rows(S_bh)                     (T, T), stored for backward
///     O_bh    = P_bh V_bh                              → context (B·T, E) columns of head h
///     y       = context W_oᵀ + b_o                     (B·T, E)
///
/// Q, K and V are read in place from the (B·T, 3E) qkv buffer with row stride 3E; the
/// separate layout writes its three Linears into the column slices of that same buffer
/// (ldy = 3E), so there are no copies or transposes. Masks: optional causal (key j ≤ query
/// i) and optional key padding (per-sequence valid length or a keep mask). A query whose
/// keys are all masked gets an all-zero probability row, hence a zero context vector and
/// zero gradients (PyTorch would give NaN).
///
/// With `queries` (one token position per sequence), only that row of each sequence is an
/// output: S_bh is its one row of scores against every key, and y is (B, E). The keys and
/// values are still projected for every token. A tower's last block uses this for the row
/// it pools (the class or end-of-text token): the same math as the full layer for that row.
public final class MultiHeadAttention {
    public let name: String
    public let embedDim: Int
    public let heads: Int
    public let headDim: Int
    public let layout: QKVLayout
    public let causal: Bool
    /// Fused: [qkv]; separate: [q, k, v].
    public let inputProjections: [Linear]
    public let outputProjection: Linear
    public var linears: [Linear] { inputProjections + [outputProjection] }

    /// The model's execution state (head parallelism, what the backward keeps).
    private let execution: ModelExecution
    /// What the next forward keeps of its probabilities (`ModelExecution`).
    public var attentionProbabilities: AttentionProbabilities { execution.attentionProbabilities }
    /// T, the tokens per sequence (shared with the owning tower).
    public let rowsPerSample: SampleRows
    private let arena: ActivationArena
    private var batch = 0, tokens = 0
    /// The query position of each sequence in the last forward; nil = every token.
    private var queries: [Int]?
    /// `execution.attentionProbabilities` of the last forward.
    private var probabilities = AttentionProbabilities.stored
    private let qkv: ActivationBuffer       // (B·T, 3E)
    private let probs: ActivationBuffer     // (B, H, T, T) stored, (B, H, 1, T) recomputed or with queries
    private let rowStatistics: ActivationBuffer   // (B, H, T, 2) softmax maximum and 1/Σ (recomputed)
    private let context: ActivationBuffer   // (B·T, E); with queries (B, E)
    /// Backward scratch shared with the other blocks of the tower.
    private let scratch: AttentionScratch
    /// Key keep-mask (B, T): 1 = attend, 0 = padded; nil = no key padding.
    private var keyKeep: Tensor?

    /// - Parameters:
    ///   - name: module path; fused: `name.qkv`, `name.proj`; separate: `name.q_proj`,
    ///     `name.k_proj`, `name.v_proj`, `name.out_proj`.
    ///   - lora: LoRA for the projections (nil: plain Linears in `region`).
    public init(_ name: String, embedDim: Int, heads: Int, layout: QKVLayout, causal: Bool,
                bias: Bool = true, region: ParameterRegion, lora: LoRAConfig?, store: ParameterStore,
                rowsPerSample: SampleRows = SampleRows(), scratch: AttentionScratch? = nil) {
        precondition(embedDim % heads == 0, "Attention \(name): width \(embedDim) not divisible by \(heads) heads")
        self.name = name
        execution = store.execution
        self.embedDim = embedDim
        self.heads = heads
        self.headDim = embedDim / heads
        self.layout = layout
        self.causal = causal
        self.rowsPerSample = rowsPerSample
        let arena = store.activations
        self.arena = arena
        qkv = arena.buffer(name + ".qkv_out") { $0.samples * rowsPerSample.count * 3 * embedDim }
        let settings = store.execution
        probs = arena.buffer(name + ".probs") {
            $0.samples * heads * rowsPerSample.count * (settings.attentionProbabilities == .stored ? rowsPerSample.count : 1)
        }
        rowStatistics = arena.buffer(name + ".row_statistics") {
            settings.attentionProbabilities == .recomputed ? $0.samples * heads * rowsPerSample.count * 2 : 0
        }
        context = arena.buffer(name + ".context") { $0.samples * rowsPerSample.count * embedDim }
        self.scratch = scratch ?? AttentionScratch(name + ".scratch", width: embedDim, rowsPerSample: rowsPerSample,
                                                   arena: arena)
        switch layout {
        case .fused:
            inputProjections = [Linear(name + ".qkv", in: embedDim, out: 3 * embedDim, bias: bias,
                                       region: region, lora: lora, store: store, rowsPerSample: rowsPerSample)]
            outputProjection = Linear(name + ".proj", in: embedDim, out: embedDim, bias: bias,
                                      region: region, lora: lora, store: store, rowsPerSample: rowsPerSample)
        case .separate:
            inputProjections = ["q_proj", "k_proj", "v_proj"].map {
                Linear(name + "." + $0, in: embedDim, out: embedDim, bias: bias, region: region,
                       lora: lora, store: store, rowsPerSample: rowsPerSample)
            }
            outputProjection = Linear(name + ".out_proj", in: embedDim, out: embedDim, bias: bias,
                                      region: region, lora: lora, store: store, rowsPerSample: rowsPerSample)
        }
    }

    /// Sets (or clears, with nil) the key padding for the following forward/backward:
    /// key t of sequence b is attended iff t < validLengths[b].
    public func setKeyPadding(validLengths: [Int]?, tokens: Int) {
        guard let validLengths else { keyKeep = nil; return }
        let count = validLengths.count * tokens
        let keep = keyKeep.flatMap { $0.count == count ? $0 : nil } ?? Tensor(shape: [validLengths.count, tokens])
        keep.zero()
        for (b, n) in validLengths.enumerated() {
            precondition(n >= 0 && n <= tokens, "Attention \(name): valid length \(n) outside 0...\(tokens)")
            (keep.data + b * tokens).update(repeating: 1, count: n)
        }
        keyKeep = keep
    }

    /// Analytic forward FLOPs (projections + the two attention products); `oneQuery`: one
    /// query row per sequence.
    public func forwardFlops(batch: Int, tokens: Int, oneQuery: Bool = false) -> Double {
        let rows = batch * tokens
        let proj = inputProjections.reduce(0) { $0 + $1.forwardFlops(rows: rows) }
            + outputProjection.forwardFlops(rows: oneQuery ? batch : rows)
        let attn = Double(batch * heads) * 2 * gemmFlops(m: oneQuery ? 1 : tokens, n: tokens, k: headDim)
        return proj + attn
    }

    /// y (B·T, E) ← attention(x (B·T, E)); with `queries` (a token position per sequence),
    /// y (B, E) holds the output of those rows only. x must stay valid until `backward`.
    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                        batch: Int, tokens: Int, queries: [Int]? = nil) {
        let E = embedDim, T = tokens, d = headDim, rows = batch * tokens
        if let keyKeep {
            precondition(keyKeep.count == rows, "Attention \(name): key padding for \(keyKeep.count) tokens, batch has \(rows)")
        }
        if let queries {
            precondition(queries.count == batch && queries.allSatisfy { $0 >= 0 && $0 < T },
                         "Attention \(name): one query position in 0..<\(T) per sequence expected")
        }
        self.batch = batch
        self.tokens = tokens
        self.queries = queries
        probabilities = execution.attentionProbabilities
        arena.reserve(samples: batch, rows: rowsPerSample, perSample: tokens)   // on its own: the call's count
        // Projections into the (B·T, 3E) qkv buffer.
        switch layout {
        case .fused:
            inputProjections[0].forward(x, qkv.data, rows: rows)
        case .separate:
            for (i, p) in inputProjections.enumerated() {
                p.forward(x, qkv.data + i * E, rows: rows, ldy: 3 * E)
            }
        }
        let scale = 1 / Float(d).squareRoot()
        let qkv = qkv.data, probs = probs.data, context = context.data, keyKeep = keyKeep?.data
        if let queries {
            forEachHead { b, h, _ in
                let qkvB = qkv + b * T * 3 * E, i = queries[b]
                let q = qkvB + i * 3 * E + h * d, k = qkvB + E + h * d, v = qkvB + 2 * E + h * d
                let p = probs + (b * heads + h) * T              // (1, T)
                gemm(.none, .transposed, m: 1, n: T, k: d, alpha: scale, a: q, lda: 3 * E,
                     b: k, ldb: 3 * E, beta: 0, c: p, ldc: T)
                maskedSoftmaxRow(p, tokens: T, visible: causal ? i + 1 : T,
                                 keep: keyKeep.map { UnsafePointer($0 + b * T) })
                gemm(.none, .none, m: 1, n: d, k: T, a: p, lda: T, b: v, ldb: 3 * E,
                     beta: 0, c: context + b * E + h * d, ldc: E)
            }
            outputProjection.forward(context, y, rows: batch)
            return
        }
        let recompute = probabilities == .recomputed
        let scores = scratch.dProbs.data, statistics = rowStatistics.data   // (T, T) per worker; (B, H, T, 2)
        forEachHead { b, h, worker in
            let qkvB = qkv + b * T * 3 * E                  // (T, 3E)
            let q = qkvB + h * d, k = qkvB + E + h * d, v = qkvB + 2 * E + h * d
            // P in the stored matrices, or in this worker's scratch (cache-resident) when recomputed.
            let p = recompute ? scores + worker * T * T : probs + (b * heads + h) * T * T   // (T, T)
            // S = Q Kᵀ·scale
            gemm(.none, .transposed, m: T, n: T, k: d, alpha: scale, a: q, lda: 3 * E,
                 b: k, ldb: 3 * E, beta: 0, c: p, ldc: T)
            maskedSoftmaxRows(p, tokens: T, keep: keyKeep.map { UnsafePointer($0 + b * T) },
                              statistics: recompute ? statistics + (b * heads + h) * T * 2 : nil)
            // O = P V → context columns h·d..<(h+1)·d
            gemm(.none, .none, m: T, n: d, k: T, a: p, lda: T, b: v, ldb: 3 * E,
                 beta: 0, c: context + b * T * E + h * d, ldc: E)
        }
        outputProjection.forward(context, y, rows: rows)
    }

    /// dx (B·T, E) += ∂L/∂x given dy (B·T, E) (`accumulate: false`: dx is overwritten);
    /// parameter gradients accumulate.
    public func backward(_ dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, accumulate: Bool = true) {
        let E = embedDim, T = tokens, d = headDim
        let workers = headWorkers
        let dContext = scratch.dContext.data        // (B·T, E)
        let dqkv = scratch.dqkv.data                // (B·T, 3E)
        let dProbsAll = scratch.dProbs.data         // (T, T) per worker
        let dScoresAll = scratch.dScores.data       // (T, T) per worker
        precondition(scratch.dProbs.count >= workers * T * T, "Attention \(name): head scratch for fewer workers")
        if let queries {
            backward(dy, dx: dx, queries: queries, accumulate: accumulate)
            return
        }
        outputProjection.backward(dy, dx: dContext, accumulate: false)
        // dqkv needs no zeroing: each (sequence, head) block of dQ, dK, dV is written once
        // below, by a GEMM with β = 0.
        let scale = 1 / Float(d).squareRoot()
        let qkv = qkv.data, probs = probs.data, statistics = rowStatistics.data, keyKeep = keyKeep?.data
        let recompute = probabilities == .recomputed
        forEachHead { b, h, worker in
            let qkvB = qkv + b * T * 3 * E, dqkvB = dqkv + b * T * 3 * E
            let q = qkvB + h * d, k = qkvB + E + h * d, v = qkvB + 2 * E + h * d
            let dq = dqkvB + h * d, dk = dqkvB + E + h * d, dv = dqkvB + 2 * E + h * d
            let dO = dContext + b * T * E + h * d            // (T, d), ld E
            let dProbs = dProbsAll + worker * T * T          // dP, then dS in place
            let p: UnsafePointer<Float>                      // (T, T)
            if recompute {
                // The forward's product and softmax again, from its row statistics: the same P.
                let scores = dScoresAll + worker * T * T
                gemm(.none, .transposed, m: T, n: T, k: d, alpha: scale, a: q, lda: 3 * E,
                     b: k, ldb: 3 * E, beta: 0, c: scores, ldc: T)
                recomputeSoftmaxRows(scores, tokens: T, keep: keyKeep.map { UnsafePointer($0 + b * T) },
                                     statistics: statistics + (b * heads + h) * T * 2)
                p = UnsafePointer(scores)
            } else {
                p = UnsafePointer(probs + (b * heads + h) * T * T)
            }
            // dP = dO Vᵀ (T, T);  dV = Pᵀ dO (T, d)
            gemm(.none, .transposed, m: T, n: T, k: d, a: dO, lda: E, b: v, ldb: 3 * E,
                 beta: 0, c: dProbs, ldc: T)
            gemm(.transposed, .none, m: T, n: d, k: T, a: p, lda: T, b: dO, ldb: E,
                 beta: 0, c: dv, ldc: 3 * E)
            // dS = P ⊙ (dP − rowsum(dP ⊙ P)) in place; masked entries have P = 0, so dS = 0 there.
            softmaxBackwardInPlace(p, dProbs, rows: T, cols: T)
            // dQ = scale · dS K;  dK = scale · dSᵀ Q
            gemm(.none, .none, m: T, n: d, k: T, alpha: scale, a: dProbs, lda: T,
                 b: k, ldb: 3 * E, beta: 0, c: dq, ldc: 3 * E)
            gemm(.transposed, .none, m: T, n: d, k: T, alpha: scale, a: dProbs, lda: T,
                 b: q, ldb: 3 * E, beta: 0, c: dk, ldc: 3 * E)
        }
        inputProjectionsBackward(dqkv, dx: dx, accumulate: accumulate)
    }

    /// The backward of a forward with one query row per sequence: dy is (B, E). dK and dV
    /// get every key row (outer products of that row's dS and dO with q); dQ only the
    /// query rows, the rest of dQ is zero.
    private func backward(_ dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, queries: [Int],
                          accumulate: Bool) {
        let E = embedDim, T = tokens, d = headDim, rows = batch * tokens
        let dContext = scratch.dContext.data        // (B, E)
        let dqkv = scratch.dqkv.data                // (B·T, 3E)
        let dProbsAll = scratch.dProbs.data         // (1, T) per worker
        outputProjection.backward(dy, dx: dContext, accumulate: false)
        zeroFill(dqkv, count: rows * 3 * E, workers: execution.rowWorkers)
        let scale = 1 / Float(d).squareRoot()
        let qkv = qkv.data, probs = probs.data
        forEachHead { b, h, worker in
            let qkvB = qkv + b * T * 3 * E, dqkvB = dqkv + b * T * 3 * E, i = queries[b]
            let q = qkvB + i * 3 * E + h * d, k = qkvB + E + h * d, v = qkvB + 2 * E + h * d
            let dq = dqkvB + i * 3 * E + h * d, dk = dqkvB + E + h * d, dv = dqkvB + 2 * E + h * d
            let p = probs + (b * heads + h) * T              // (1, T)
            let dO = dContext + b * E + h * d                // (1, d)
            let dProbs = dProbsAll + worker * T
            // dp = dO Vᵀ (1, T);  dV = pᵀ dO (T, d)
            gemm(.none, .transposed, m: 1, n: T, k: d, a: dO, lda: E, b: v, ldb: 3 * E,
                 beta: 0, c: dProbs, ldc: T)
            gemm(.transposed, .none, m: T, n: d, k: 1, a: p, lda: T, b: dO, ldb: E,
                 beta: 0, c: dv, ldc: 3 * E)
            softmaxBackwardInPlace(p, dProbs, rows: 1, cols: T)   // ds in place of dp
            // dq = scale · ds K (1, d);  dK = scale · dsᵀ q (T, d)
            gemm(.none, .none, m: 1, n: d, k: T, alpha: scale, a: dProbs, lda: T,
                 b: k, ldb: 3 * E, beta: 0, c: dq, ldc: 3 * E)
            gemm(.transposed, .none, m: T, n: d, k: 1, alpha: scale, a: dProbs, lda: T,
                 b: q, ldb: 3 * E, beta: 0, c: dk, ldc: 3 * E)
        }
        inputProjectionsBackward(dqkv, dx: dx, accumulate: accumulate)
    }

    /// dx += (or, without `accumulate`, =) the input projections' backward of dqkv (B·T, 3E).
    private func inputProjectionsBackward(_ dqkv: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
                                          accumulate: Bool) {
        switch layout {
        case .fused:
            inputProjections[0].backward(dqkv, dx: dx, accumulate: accumulate)
        case .separate:
            for (i, p) in inputProjections.enumerated() {
                p.backward(dqkv + i * embedDim, dx: dx, lddy: 3 * embedDim, accumulate: accumulate || i > 0)
            }
        }
    }

    /// Number of workers `forEachHead` uses: the BLAS thread count when the model's
    /// `execution.parallelWorkers` is on, at most one per (sequence, head) pair; otherwise 1.
    private var headWorkers: Int {
        execution.parallelWorkers ? max(1, min(BLASRuntime.threads, batch * heads)) : 1
    }

    /// Runs `body(b, h, worker)` for every sequence b < batch and head h, with
    /// `worker < headWorkers`. With several workers, the (b, h) pairs are dealt
    /// round-robin to that many workers, each issuing single-threaded GEMMs: one head's
    /// products (T×T×d, 5 MFLOP at T = 197, d = 64) are too small to split well across
    /// OpenBLAS threads (1.25× faster on 2 threads, against 1.97× for two heads at a time,
    /// ViT-B/16 forward), and the softmax between them runs in parallel too. Each pair
    /// writes its own rows and columns, so the results do not depend on the worker count.
    private func forEachHead(_ body: (_ b: Int, _ h: Int, _ worker: Int) -> Void) {
        let pairs = batch * heads, workers = headWorkers
        guard workers > 1 else {
            for i in 0..<pairs { body(i / heads, i % heads, 0) }
            return
        }
        let threads = BLASRuntime.threads
        BLASRuntime.setThreads(1)
        GEMMStatistics.concurrency = workers
        defer {
            GEMMStatistics.concurrency = 1
            BLASRuntime.setThreads(threads)
        }
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            for i in stride(from: worker, to: pairs, by: workers) { body(i / heads, i % heads, worker) }
        }
    }

    /// Row-wise softmax of the (T, T) scores in place, with the causal and key-padding masks
    /// applied (masked entries become exactly 0; a fully masked row becomes all zeros).
    /// With `statistics` (T, 2), each row's softmax maximum and 1/Σ are saved there.
    private func maskedSoftmaxRows(_ s: UnsafeMutablePointer<Float>, tokens T: Int,
                                   keep: UnsafePointer<Float>?, statistics: UnsafeMutablePointer<Float>? = nil) {
        for i in 0..<T {
            // keys 0..<visible pass the causal mask
            let stats = maskedSoftmaxRow(s + i * T, tokens: T, visible: causal ? i + 1 : T, keep: keep)
            if let statistics {
                statistics[2 * i] = stats.maximum
                statistics[2 * i + 1] = stats.inverseSum
            }
        }
    }

    /// Rebuilds the probabilities `maskedSoftmaxRows` made from the same scores s (T, T),
    /// given its saved row statistics.
    private func recomputeSoftmaxRows(_ s: UnsafeMutablePointer<Float>, tokens T: Int,
                                      keep: UnsafePointer<Float>?, statistics: UnsafePointer<Float>) {
        for i in 0..<T {
            let row = s + i * T, visible = causal ? i + 1 : T
            if visible < T { (row + visible).update(repeating: 0, count: T - visible) }
            if let keep {
                for j in 0..<visible where keep[j] == 0 { row[j] = -.infinity }
            }
            let inverseSum = statistics[2 * i + 1]
            if inverseSum == 0 {   // every key masked: the all-zero row
                row.update(repeating: 0, count: visible)
            } else {
                softmaxRowRecompute(row, count: visible, maximum: statistics[2 * i], inverseSum: inverseSum)
            }
        }
    }

    /// Softmax of one row of T scores in place over keys 0..<visible that `keep` keeps;
    /// the other entries become exactly 0 (all of them when no key is kept, reported as
    /// statistics (0, 0)).
    @discardableResult
    private func maskedSoftmaxRow(_ row: UnsafeMutablePointer<Float>, tokens T: Int, visible: Int,
                                  keep: UnsafePointer<Float>?) -> (maximum: Float, inverseSum: Float) {
        if visible < T { (row + visible).update(repeating: 0, count: T - visible) }
        guard let keep else {
            return softmaxRowInPlace(row, count: visible)
        }
        var any = false
        for j in 0..<visible {
            if keep[j] == 0 { row[j] = -.infinity } else { any = true }
        }
        if any {
            return softmaxRowInPlace(row, count: visible)
        }
        row.update(repeating: 0, count: visible)
        return (0, 0)
    }
}

/// Attention's backward scratch, one per tower (its blocks run their backward one at a
/// time). The per-worker (T, T) matrices are sized for as many workers as BLAS threads
/// (`forEachHead`); the arena re-plans when the thread count changes.
public final class AttentionScratch {
    let dContext: ActivationBuffer   // (B·T, E)
    let dqkv: ActivationBuffer       // (B·T, 3E)
    let dProbs: ActivationBuffer     // (workers, T, T)
    let dScores: ActivationBuffer    // (workers, T, T)

    public init(_ name: String, width: Int, rowsPerSample: SampleRows, arena: ActivationArena) {
        dContext = arena.buffer(name + ".d_context") { $0.samples * rowsPerSample.count * width }
        dqkv = arena.buffer(name + ".d_qkv") { $0.samples * rowsPerSample.count * 3 * width }
        let perWorker: (ActivationShape) -> Int = { _ in
            max(1, BLASRuntime.threads) * rowsPerSample.count * rowsPerSample.count
        }
        dProbs = arena.buffer(name + ".d_probs", size: perWorker)
        dScores = arena.buffer(name + ".d_scores", size: perWorker)
    }
}
