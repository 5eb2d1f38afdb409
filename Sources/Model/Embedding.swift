import Kernels

/// A token-embedding table `<name>.weight (V, D)`, optionally with PEFT's Embedding LoRA:
///
///     y[r, :] = W[id_r, :] + s · Aᵀ[id_r, :] Bᵀ,    A: (r, V),  B: (D, r),  s = α/r
///
/// stored as `<name>.lora_embedding_A (r, V)` and `<name>.lora_embedding_B (D, r)`.
/// Initialisation follows PEFT (which follows loralib): A = 0 and B ~ Normal(0, 1), the
/// opposite of a Linear's LoRA, so the update starts at zero. PEFT applies no dropout to
/// an Embedding's LoRA, and neither do we. With LoRA the table is frozen.
public final class TokenEmbedding {
    public let name: String
    public let vocabularySize: Int
    public let width: Int
    public let weight: Parameter
    public let loraA: Parameter?
    public let loraB: Parameter?
    public let lora: LoRAConfig?
    public private(set) var isMerged = false

    /// L, the tokens per report (shared with the owning tower).
    public let rowsPerSample: SampleRows
    private let arena: ActivationArena
    private var ids: UnsafePointer<Int32>?
    private var rows = 0
    private let loraHidden: ActivationBuffer       // (rows, r)  Aᵀ[ids]
    private let loraHiddenGrad: ActivationBuffer   // (rows, r)

    public init(_ name: String, vocabularySize: Int, width: Int, region: ParameterRegion,
                lora: LoRAConfig?, store: ParameterStore, initStd: Float = 0.02,
                rowsPerSample: SampleRows = SampleRows()) {
        self.name = name
        self.rowsPerSample = rowsPerSample
        arena = store.activations
        let r = lora?.rank ?? 0
        loraHidden = arena.buffer(name + ".lora_hidden") { $0.samples * rowsPerSample.count * r }
        loraHiddenGrad = arena.buffer(name + ".lora_hidden_grad") { $0.samples * rowsPerSample.count * r }
        self.vocabularySize = vocabularySize
        self.width = width
        self.lora = lora
        weight = store.declare(name + ".weight", shape: [vocabularySize, width],
                               region: lora == nil ? region : .frozen, initializer: .normal(std: initStd))
        if let lora {
            loraA = store.declare(name + ".lora_embedding_A", shape: [lora.rank, vocabularySize],
                                  region: .trainable, initializer: .zeros)
            loraB = store.declare(name + ".lora_embedding_B", shape: [width, lora.rank],
                                  region: .trainable, initializer: .normal(std: 1))
        } else {
            loraA = nil
            loraB = nil
        }
    }

    public func forwardFlops(rows: Int) -> Double {
        guard let lora, !isMerged else { return 0 }
        return gemmFlops(m: rows, n: width, k: lora.rank)
    }

    /// y (rows, D) ← embeddings of `ids` (rows). `ids` must stay valid until `backward`.
    public func forward(_ ids: UnsafePointer<Int32>, _ y: UnsafeMutablePointer<Float>, rows: Int) {
        let D = width, V = vocabularySize
        self.ids = ids
        self.rows = rows
        let w = weight.value
        for r in 0..<rows {
            let id = Int(ids[r])
            precondition(id >= 0 && id < V, "TokenEmbedding \(name): token id \(id) outside 0..<\(V)")
            (y + r * D).update(from: w + id * D, count: D)
        }
        guard let lora, let loraA, let loraB, !isMerged else { return }
        let rank = lora.rank
        arena.reserve(samples: samples(rows: rows, per: rowsPerSample))
        // h[r, k] = A[k, id_r]  (rows, r);  y += s · h Bᵀ
        let a = loraA.value, h = loraHidden.data
        for r in 0..<rows {
            let id = Int(ids[r])
            for k in 0..<rank { h[r * rank + k] = a[k * V + id] }
        }
        gemm(.none, .transposed, m: rows, n: D, k: rank, alpha: lora.scale, a: h, lda: rank,
             b: loraB.value, ldb: rank, beta: 1, c: y, ldc: D)
    }

    /// Adds the gradients of the trainable parameters given dy (rows, D) (ids get none).
    public func backward(_ dy: UnsafePointer<Float>) {
        guard let ids else { preconditionFailure("TokenEmbedding \(name): backward before forward") }
        precondition(!isMerged, "TokenEmbedding \(name): backward through a merged LoRA table")
        let D = width, V = vocabularySize
        if let g = weight.gradient {
            for r in 0..<rows { axpy(1, dy + r * D, g + Int(ids[r]) * D, count: D) }
        }
        guard let lora, let loraA, let loraB else { return }
        let rank = lora.rank, s = lora.scale
        // dB += s · dyᵀ h (D, r);  dh = s · dy B (rows, r);  dA[k, id_r] += dh[r, k]
        gemm(.transposed, .none, m: D, n: rank, k: rows, alpha: s, a: dy, lda: D,
             b: loraHidden.data, ldb: rank, beta: 1, c: loraB.gradient!, ldc: rank)
        gemm(.none, .none, m: rows, n: rank, k: D, alpha: s, a: dy, lda: D, b: loraB.value,
             ldb: rank, beta: 0, c: loraHiddenGrad.data, ldc: rank)
        let dA = loraA.gradient!, dh = loraHiddenGrad.data
        for r in 0..<rows {
            let id = Int(ids[r])
            for k in 0..<rank { dA[k * V + id] += dh[r * rank + k] }
        }
    }

    /// W ← W + s·(B A)ᵀ = W + s·Aᵀ Bᵀ (V, D) (PEFT's Embedding `get_delta_weight`).
    public func mergeLoRA() {
        guard let lora, let loraA, let loraB, !isMerged else { return }
        gemm(.transposed, .transposed, m: vocabularySize, n: width, k: lora.rank, alpha: lora.scale,
             a: loraA.value, lda: vocabularySize, b: loraB.value, ldb: lora.rank,
             beta: 1, c: weight.value, ldc: width)
        isMerged = true
    }

    /// Undoes `mergeLoRA` (exact up to float rounding).
    public func unmergeLoRA() {
        guard let lora, let loraA, let loraB, isMerged else { return }
        gemm(.transposed, .transposed, m: vocabularySize, n: width, k: lora.rank, alpha: -lora.scale,
             a: loraA.value, lda: vocabularySize, b: loraB.value, ldb: lora.rank,
             beta: 1, c: weight.value, ldc: width)
        isMerged = false
    }
}

/// y[b, s + t, :] += pos[t, :] for b < batch, t < tokens − s, s = `skipping` (leading tokens
/// without a position, timm `no_embed_class`). Shapes: y (B·T, D), pos (T − s, D).
func addPositionEmbedding(_ y: UnsafeMutablePointer<Float>, _ pos: UnsafePointer<Float>,
                          batch: Int, tokens: Int, width: Int, skipping: Int = 0) {
    for b in 0..<batch {
        axpy(1, pos, y + (b * tokens + skipping) * width, count: (tokens - skipping) * width)
    }
}

/// dpos[t, :] += Σ_b dy[b, s + t, :], s = `skipping`. Shapes: dy (B·T, D), dpos (T − s, D).
func positionEmbeddingBackward(_ dy: UnsafePointer<Float>, _ dpos: UnsafeMutablePointer<Float>,
                               batch: Int, tokens: Int, width: Int, skipping: Int = 0) {
    for b in 0..<batch {
        axpy(1, dy + (b * tokens + skipping) * width, dpos, count: (tokens - skipping) * width)
    }
}
