import Kernels

/// A fully connected layer `y = x Wᵀ + b`, optionally adapted with LoRA:
///
///     y = x Wᵀ + b + s · (drop(x) Aᵀ) Bᵀ,    s = α/r,  A: (r, in),  B: (out, r)
///
/// `W` is stored `(out, in)` as in PyTorch (a Conv2d weight `(out, c, kh, kw)` applied to
/// unfolded patches is the same matrix). With LoRA the base weight and bias are frozen and
/// only A and B train; without LoRA the layer's parameters are in the region given at init.
///
/// `forward` caches a pointer to its input; `backward` must follow the matching forward
/// and *adds* into `dx` and into the parameter gradients (llm.c convention).
///
/// LoRA's product with A rides on the base GEMM where that measured faster (docs/
/// benchmarks.md, "LoRA folded into the base GEMMs"): in the forward of a layer that adds
/// its bias here and whose input is at least as wide as its output (attention projection,
/// fc2), Z = x·[W; A]ᵀ in one GEMM, and one pass splits Z into y = Z[:, :out] + b (the bias
/// pass it replaces) and h = Z[:, out:], sparing the separate x·Aᵀ its second read of x.
/// The same products and sums per element.
public final class Linear {
    public let name: String
    public let inFeatures: Int
    public let outFeatures: Int
    public let weight: Parameter
    public let bias: Parameter?
    public let loraA: Parameter?
    public let loraB: Parameter?
    public let lora: LoRAConfig?
    /// Whether the LoRA update is currently folded into `weight` (inference only).
    public private(set) var isMerged = false
    /// Whether dropout on the LoRA input is active (training).
    public var isTraining = true
    /// Rows of this layer's input per sample (N patches or T tokens per image, L tokens
    /// per report, 1 for a pooled feature), shared with the owning tower: it sizes the
    /// activations, and mask row r of the local batch is drawn for the global row
    /// `firstGlobalRow · rowsPerSample + r`, so masks do not depend on how a batch is split.
    public let rowsPerSample: SampleRows
    /// The store's execution state (its step dropout stream).
    private let execution: ModelExecution
    private let arena: ActivationArena

    private let layerID: UInt64
    // Cached from the last forward.
    private var input: UnsafePointer<Float>?
    private var inputStride = 0
    private var rows = 0
    // LoRA activations (empty without LoRA).
    private let loraHidden: ActivationBuffer       // (rows, r)   drop(x) Aᵀ
    private let loraHiddenGrad: ActivationBuffer   // (rows, r)
    private let droppedInput: ActivationBuffer     // (rows, in)  only with dropout
    /// (rows, out + r) scratch shared by the store's Linears: Z of the folded forward.
    private let foldScratch: ActivationBuffer?
    /// [W; A] (out + r, in) for the folded products, refreshed at each use (A trains, W
    /// may be reloaded); allocated on first use.
    private var stackedWeight: UnsafeMutablePointer<Float>?

    /// Declares the layer's parameters in `store`.
    /// - Parameters:
    ///   - name: module path, e.g. `vision.blocks.0.attn.qkv`; parameters are `name.weight`,
    ///     `name.bias`, `name.lora_A.weight`, `name.lora_B.weight`.
    ///   - weightShape: the stored shape of the weight when it is not `(out, in)`
    ///     (a Conv2d patch embedding, `(out, c, kh, kw)`); its product must be out·in.
    ///   - region: where the base weight and bias live when there is no LoRA.
    public init(_ name: String, in inFeatures: Int, out outFeatures: Int, bias hasBias: Bool = true,
                weightShape: [Int]? = nil, region: ParameterRegion, lora: LoRAConfig? = nil,
                store: ParameterStore, rowsPerSample: SampleRows = SampleRows()) {
        let shape = weightShape ?? [outFeatures, inFeatures]
        precondition(shape.reduce(1, *) == outFeatures * inFeatures,
                     "Linear \(name): weight shape \(shape) is not \(outFeatures)×\(inFeatures)")
        self.name = name
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        self.lora = lora
        self.layerID = stableHash(name)
        execution = store.execution
        arena = store.activations
        self.rowsPerSample = rowsPerSample
        let r = lora?.rank ?? 0, dropped = (lora?.dropout ?? 0) > 0 ? inFeatures : 0
        loraHidden = arena.buffer(name + ".lora_hidden") { $0.samples * rowsPerSample.count * r }
        loraHiddenGrad = arena.buffer(name + ".lora_hidden_grad") { $0.samples * rowsPerSample.count * r }
        droppedInput = arena.buffer(name + ".dropped_input") { $0.samples * rowsPerSample.count * dropped }
        let wide = outFeatures + r
        foldScratch = lora == nil ? nil
            : arena.sharedBuffer("linear.fold_scratch") { $0.samples * rowsPerSample.count * wide }
        let baseRegion: ParameterRegion = lora == nil ? region : .frozen
        weight = store.declare(name + ".weight", shape: shape, region: baseRegion,
                               initializer: .kaimingUniform(fanIn: inFeatures))
        bias = hasBias
            ? store.declare(name + ".bias", shape: [outFeatures], region: baseRegion,
                            initializer: .uniform(bound: 1 / Float(inFeatures).squareRoot()))
            : nil
        if let lora {
            let r = lora.rank
            let aShape = shape.count == 4 ? [r] + shape.dropFirst() : [r, inFeatures]
            let bShape = shape.count == 4 ? [outFeatures, r, 1, 1] : [outFeatures, r]
            loraA = store.declare(name + ".lora_A.weight", shape: aShape, region: .trainable,
                                  initializer: .kaimingUniform(fanIn: inFeatures))
            loraB = store.declare(name + ".lora_B.weight", shape: bShape, region: .trainable,
                                  initializer: .zeros)
        } else {
            loraA = nil
            loraB = nil
        }
    }

    deinit { stackedWeight?.deallocate() }

    /// Number of multiply–adds ×2 of one forward over `rows` rows (for FLOP accounting).
    public func forwardFlops(rows: Int) -> Double {
        var f = gemmFlops(m: rows, n: outFeatures, k: inFeatures)
        if let lora, !isMerged {
            f += gemmFlops(m: rows, n: lora.rank, k: inFeatures)
                + gemmFlops(m: rows, n: outFeatures, k: lora.rank)
        }
        return f
    }

    /// y (rows, out) ← x (rows, in) Wᵀ + b [+ LoRA]. `ldx`/`ldy` are row strides
    /// (defaults: packed), so a layer can read or write a column slice of a wider buffer.
    /// `addingBias: false` leaves b out, for a caller that adds it in its next pass over y.
    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int,
                        ldx: Int? = nil, ldy: Int? = nil, addingBias: Bool = true) {
        let ldx = ldx ?? inFeatures, ldy = ldy ?? outFeatures
        input = x
        inputStride = ldx
        self.rows = rows
        if let lora, let loraB, let bias, addingBias, inFeatures >= outFeatures, !isMerged,
           !(isTraining && lora.dropout > 0) {
            foldedForward(x, ldx: ldx, y, ldy: ldy, rows: rows, lora: lora, loraB: loraB, bias: bias)
            return
        }
        gemm(.none, .transposed, m: rows, n: outFeatures, k: inFeatures,
             a: x, lda: ldx, b: weight.value, ldb: inFeatures, beta: 0, c: y, ldc: ldy)
        if let bias, addingBias {
            let b = bias.value, n = outFeatures
            concurrentChunks(rows, workers: execution.rowWorkers, minimumPerWorker: 64) { r in
                addBias(y + r.lowerBound * ldy, b, rows: r.count, n: n, ld: ldy)
            }
        }
        guard let lora, let loraA, let loraB, !isMerged else { return }
        let r = lora.rank
        arena.reserve(samples: samples(rows: rows, per: rowsPerSample))
        var loraInput = x, loraStride = ldx
        if isTraining && lora.dropout > 0 {
            applyDropout(x, ldx: ldx, rows: rows, p: lora.dropout)
            loraInput = UnsafePointer(droppedInput.data)
            loraStride = inFeatures
        }
        // h = drop(x) Aᵀ  (rows, r);  y += s · h Bᵀ
        gemm(.none, .transposed, m: rows, n: r, k: inFeatures,
             a: loraInput, lda: loraStride, b: loraA.value, ldb: inFeatures,
             beta: 0, c: loraHidden.data, ldc: r)
        gemm(.none, .transposed, m: rows, n: outFeatures, k: r, alpha: lora.scale,
             a: loraHidden.data, lda: r, b: loraB.value, ldb: r, beta: 1, c: y, ldc: ldy)
    }

    /// Given dy (rows, out), adds dL/dx into `dx` (if non-nil; `accumulate: false`
    /// overwrites it instead, so the caller need not zero it) and dL/dθ into the gradients
    /// of the trainable parameters. `lddy`/`lddx` are row strides (defaults: packed).
    public func backward(_ dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?,
                         lddy: Int? = nil, lddx: Int? = nil, accumulate: Bool = true) {
        guard let x = input else { preconditionFailure("Linear \(name): backward before forward") }
        precondition(!isMerged, "Linear \(name): backward through a merged LoRA layer")
        let lddy = lddy ?? outFeatures, lddx = lddx ?? inFeatures
        // Base weight: dW += dyᵀ x (out, in);  db += Σ_rows dy.
        if let g = weight.gradient {
            gemm(.transposed, .none, m: outFeatures, n: inFeatures, k: rows,
                 a: dy, lda: lddy, b: x, ldb: inputStride, beta: 1, c: g, ldc: inFeatures)
        }
        if let bias, let g = bias.gradient { sumRows(dy, into: g, rows: rows, n: outFeatures, ld: lddy) }
        // dx += dy W  (rows, in)
        if let dx {
            gemm(.none, .none, m: rows, n: inFeatures, k: outFeatures,
                 a: dy, lda: lddy, b: weight.value, ldb: inFeatures, beta: accumulate ? 1 : 0, c: dx, ldc: lddx)
        }
        guard let lora, let loraA, let loraB else { return }
        let r = lora.rank, s = lora.scale
        let dropped = isTraining && lora.dropout > 0
        let loraInput = dropped ? UnsafePointer(droppedInput.data) : x
        let loraStride = dropped ? inFeatures : inputStride
        // dB += s · dyᵀ h (out, r);  dh = s · dy B (rows, r);  dA += dhᵀ drop(x) (r, in)
        gemm(.transposed, .none, m: outFeatures, n: r, k: rows, alpha: s,
             a: dy, lda: lddy, b: loraHidden.data, ldb: r, beta: 1, c: loraB.gradient!, ldc: r)
        gemm(.none, .none, m: rows, n: r, k: outFeatures, alpha: s,
             a: dy, lda: lddy, b: loraB.value, ldb: r, beta: 0, c: loraHiddenGrad.data, ldc: r)
        gemm(.transposed, .none, m: r, n: inFeatures, k: rows,
             a: loraHiddenGrad.data, lda: r, b: loraInput, ldb: loraStride,
             beta: 1, c: loraA.gradient!, ldc: inFeatures)
        guard let dx else { return }
        if dropped {
            // d drop(x) = dh A, then through the mask (kept values were scaled by 1/(1−p)).
            gemm(.none, .none, m: rows, n: inFeatures, k: r, a: loraHiddenGrad.data, lda: r,
                 b: loraA.value, ldb: inFeatures, beta: 0, c: droppedInput.data, ldc: inFeatures)
            maskDropoutGradient(into: dx, lddx: lddx, rows: rows, p: lora.dropout)
        } else {
            gemm(.none, .none, m: rows, n: inFeatures, k: r, a: loraHiddenGrad.data, lda: r,
                 b: loraA.value, ldb: inFeatures, beta: 1, c: dx, ldc: lddx)
        }
    }

    /// Folds the LoRA update into the base weight: W ← W + s·B A. Inference then costs
    /// exactly what the plain layer costs.
    public func mergeLoRA() {
        guard let lora, let loraA, let loraB, !isMerged else { return }
        gemm(.none, .none, m: outFeatures, n: inFeatures, k: lora.rank, alpha: lora.scale,
             a: loraB.value, lda: lora.rank, b: loraA.value, ldb: inFeatures,
             beta: 1, c: weight.value, ldc: inFeatures)
        isMerged = true
    }

    /// Undoes `mergeLoRA`: W ← W − s·B A (exact up to float rounding).
    public func unmergeLoRA() {
        guard let lora, let loraA, let loraB, isMerged else { return }
        gemm(.none, .none, m: outFeatures, n: inFeatures, k: lora.rank, alpha: -lora.scale,
             a: loraB.value, lda: lora.rank, b: loraA.value, ldb: inFeatures,
             beta: 1, c: weight.value, ldc: inFeatures)
        isMerged = false
    }

    // MARK: - LoRA folded into the base GEMMs

    /// [W; A] with the current values.
    private func refreshStackedWeight(rank r: Int) -> UnsafeMutablePointer<Float> {
        let count = outFeatures * inFeatures
        let stacked = stackedWeight ?? UnsafeMutablePointer<Float>.allocate(capacity: count + r * inFeatures)
        stackedWeight = stacked
        stacked.update(from: weight.value, count: count)
        (stacked + count).update(from: loraA!.value, count: r * inFeatures)
        return stacked
    }

    /// Z = x·[W; A]ᵀ (rows, out + r); y = Z[:, :out] + b and h = Z[:, out:] in one pass;
    /// y += s·h·Bᵀ.
    private func foldedForward(_ x: UnsafePointer<Float>, ldx: Int, _ y: UnsafeMutablePointer<Float>, ldy: Int,
                               rows: Int, lora: LoRAConfig, loraB: Parameter, bias: Parameter) {
        let r = lora.rank, n = outFeatures, wide = outFeatures + r
        arena.reserve(samples: samples(rows: rows, per: rowsPerSample))
        let stacked = refreshStackedWeight(rank: r)
        let z = foldScratch!.data, h = loraHidden.data, b = UnsafePointer(bias.value)
        gemm(.none, .transposed, m: rows, n: wide, k: inFeatures,
             a: x, lda: ldx, b: stacked, ldb: inFeatures, beta: 0, c: z, ldc: wide)
        concurrentChunks(rows, workers: execution.rowWorkers, minimumPerWorker: 64) { range in
            for row in range {
                let zr = UnsafePointer(z + row * wide)
                addRow(zr, b, into: y + row * ldy, count: n)
                (h + row * r).update(from: zr + n, count: r)
            }
        }
        gemm(.none, .transposed, m: rows, n: n, k: r, alpha: lora.scale,
             a: h, lda: r, b: loraB.value, ldb: r, beta: 1, c: y, ldc: ldy)
    }

    // MARK: - Helpers

    /// droppedInput = mask ⊙ x / (1−p), with masks drawn from the store's step dropout stream; backward
    /// regenerates the same masks instead of storing them.
    private func applyDropout(_ x: UnsafePointer<Float>, ldx: Int, rows: Int, p: Float) {
        let keep = 1 / (1 - p)
        let out = droppedInput.data
        let stream = execution.dropout, first = stream.firstGlobalRow * rowsPerSample.count
        for r in 0..<rows {
            var rng = stream.generator(layer: layerID, row: first + r)
            let xr = x + r * ldx, o = out + r * inFeatures
            for j in 0..<inFeatures { o[j] = rng.nextFloat() < p ? 0 : xr[j] * keep }
        }
    }

    /// dx += mask ⊙ g / (1−p) with g held in `droppedInput`; masks regenerated.
    private func maskDropoutGradient(into dx: UnsafeMutablePointer<Float>, lddx: Int, rows: Int,
                                     p: Float) {
        let keep = 1 / (1 - p)
        let g = droppedInput.data
        let stream = execution.dropout, first = stream.firstGlobalRow * rowsPerSample.count
        for r in 0..<rows {
            var rng = stream.generator(layer: layerID, row: first + r)
            let gr = g + r * inFeatures, d = dx + r * lddx
            for j in 0..<inFeatures where rng.nextFloat() >= p { d[j] += gr[j] * keep }
        }
    }
}

/// y[r, 0..<n] += bias for each row of a (rows, n) block with row stride `ld`.
@inline(__always)
func addBias(_ y: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, rows: Int, n: Int,
             ld: Int) {
    if ld == n { addBiasRows(y, bias: bias, rows: rows, cols: n); return }
    for r in 0..<rows { axpy(1, bias, y + r * ld, count: n) }
}

/// g += Σ_rows dy[r, 0..<n] for a (rows, n) block with row stride `ld`.
@inline(__always)
func sumRows(_ dy: UnsafePointer<Float>, into g: UnsafeMutablePointer<Float>, rows: Int, n: Int,
             ld: Int) {
    if ld == n { sumRowsInto(dy, g, rows: rows, cols: n); return }
    for r in 0..<rows { axpy(1, dy + r * ld, g, count: n) }
}

/// y[0..<count] = z[0..<count] + bias[0..<count], eight lanes at a time.
@inline(__always)
func addRow(_ z: UnsafePointer<Float>, _ bias: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
    var j = 0
    while j + 8 <= count {
        let v = UnsafeRawPointer(z + j).loadUnaligned(as: SIMD8<Float>.self)
            + UnsafeRawPointer(bias + j).loadUnaligned(as: SIMD8<Float>.self)
        UnsafeMutableRawPointer(y + j).storeBytes(of: v, as: SIMD8<Float>.self)
        j += 8
    }
    while j < count { y[j] = z[j] + bias[j]; j += 1 }
}
