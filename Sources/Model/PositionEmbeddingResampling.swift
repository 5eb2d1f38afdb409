import Kernels

/// How `interpolatePositionEmbedding` resamples a position-embedding grid: each case is one
/// setting of PyTorch's `F.interpolate(x, size=…, align_corners=False)`, applied separably
/// (along the grid's columns, then its rows).
public enum GridResampling: String, Codable, Sendable, CaseIterable {
    /// `mode="bilinear", antialias=False`: source coordinate `max(0, (i + ½)·in/out − ½)`,
    /// two neighbours, the upper one clamped to the edge.
    case bilinear
    /// `mode="bicubic", antialias=False`: source coordinate `(i + ½)·in/out − ½`, Keys' cubic
    /// convolution with a = −0.75 on the four neighbours, taps clamped to the edge.
    case bicubic
    /// `mode="bicubic", antialias=True`, the default of timm's `resample_abs_pos_embed` (used by
    /// `dynamic_img_size` and by timm's checkpoint loading): Keys' cubic with a = −0.5 around the
    /// centre `(i + ½)·in/out`, support 2·max(1, in/out), taps outside the grid dropped and the
    /// weights renormalised to sum 1 (Pillow's scheme). Differs from `bicubic` even when enlarging.
    case bicubicAntialiased
}

/// The input positions and weights that make output position `i` of a 1-D resampling from
/// `inSize` to `outSize` samples (PyTorch's `UpSampleKernel.cpp`, see `GridResampling`).
func resamplingTaps(_ i: Int, from inSize: Int, to outSize: Int, _ mode: GridResampling) -> [(Int, Float)] {
    let scale = Float(inSize) / Float(outSize)
    // Keys (1981) cubic convolution kernel: |x| < 1 and 1 ≤ |x| < 2 branches.
    func near(_ x: Float, _ a: Float) -> Float { ((a + 2) * x - (a + 3)) * x * x + 1 }
    func far(_ x: Float, _ a: Float) -> Float { ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }
    func clamped(_ j: Int) -> Int { min(max(j, 0), inSize - 1) }
    switch mode {
    case .bilinear:
        let x = max(0, (Float(i) + 0.5) * scale - 0.5)
        let i0 = min(Int(x), inSize - 1), i1 = min(i0 + 1, inSize - 1)
        let w1 = x - Float(i0)
        return [(i0, 1 - w1), (i1, w1)]
    case .bicubic:
        let x = (Float(i) + 0.5) * scale - 0.5, f = x.rounded(.down), t = x - f, a: Float = -0.75
        let j = Int(f)
        return [(clamped(j - 1), far(t + 1, a)), (clamped(j), near(t, a)),
                (clamped(j + 1), near(1 - t, a)), (clamped(j + 2), far(2 - t, a))]
    case .bicubicAntialiased:
        let a: Float = -0.5
        func kernel(_ x: Float) -> Float {
            let x = abs(x)
            return x < 1 ? near(x, a) : x < 2 ? far(x, a) : 0
        }
        let support: Float = scale >= 1 ? 2 * scale : 2, inverse: Float = scale >= 1 ? 1 / scale : 1
        let center = scale * (Float(i) + 0.5)
        let first = max(Int(center - support + 0.5), 0)        // Int() truncates, as the C++ cast
        let end = min(Int(center + support + 0.5), inSize)
        var taps = (first..<end).map { j in (j, kernel((Float(j) - center + 0.5) * inverse)) }
        let total = taps.reduce(0) { $0 + $1.1 }
        if total != 0 { taps = taps.map { ($0.0, $0.1 / total) } }
        return taps
    }
}

/// Resamples the patch-grid part of a ViT position embedding to a new grid with `mode`
/// (default: timm's `resample_abs_pos_embed`, bicubic with antialiasing). The first
/// `prefixTokens` rows (class and register tokens, when the embedding covers them) are copied
/// unchanged. At the same grid size the result equals the input exactly.
///
/// - Parameters:
///   - source: `(prefixTokens + oldGrid.h·oldGrid.w, width)`, row-major, grid rows y-major.
///   - destination: `(prefixTokens + newGrid.h·newGrid.w, width)`.
public func interpolatePositionEmbedding(_ source: UnsafePointer<Float>,
                                         into destination: UnsafeMutablePointer<Float>,
                                         prefixTokens: Int, oldGrid: (height: Int, width: Int),
                                         newGrid: (height: Int, width: Int), width: Int,
                                         mode: GridResampling = .bicubicAntialiased) {
    let D = width
    destination.update(from: source, count: prefixTokens * D)
    let src = source + prefixTokens * D, dst = destination + prefixTokens * D
    if oldGrid == newGrid {
        dst.update(from: src, count: newGrid.height * newGrid.width * D)
        return
    }
    // Along x: (oldH, oldW, D) → (oldH, newW, D); then along y: → (newH, newW, D).
    let columns = (0..<newGrid.width).map { resamplingTaps($0, from: oldGrid.width, to: newGrid.width, mode) }
    let rows = (0..<newGrid.height).map { resamplingTaps($0, from: oldGrid.height, to: newGrid.height, mode) }
    var across = [Float](repeating: 0, count: oldGrid.height * newGrid.width * D)
    across.withUnsafeMutableBufferPointer { tmp in
        let t = tmp.baseAddress!
        for y in 0..<oldGrid.height {
            for (ox, taps) in columns.enumerated() {
                let out = t + (y * newGrid.width + ox) * D
                for (x, w) in taps { axpy(w, src + (y * oldGrid.width + x) * D, out, count: D) }
            }
        }
        for (oy, taps) in rows.enumerated() {
            let out = dst + oy * newGrid.width * D
            out.update(repeating: 0, count: newGrid.width * D)
            for (y, w) in taps { axpy(w, t + y * newGrid.width * D, out, count: newGrid.width * D) }
        }
    }
}

/// Array form of `interpolatePositionEmbedding(_:into:…)`.
public func interpolatePositionEmbedding(_ source: [Float], prefixTokens: Int,
                                         oldGrid: (height: Int, width: Int),
                                         newGrid: (height: Int, width: Int), width: Int,
                                         mode: GridResampling = .bicubicAntialiased) -> [Float] {
    precondition(source.count == (prefixTokens + oldGrid.height * oldGrid.width) * width,
                 "interpolatePositionEmbedding: \(source.count) values for a \(oldGrid) grid of width \(width) with \(prefixTokens) prefix tokens")
    var out = [Float](repeating: 0, count: (prefixTokens + newGrid.height * newGrid.width) * width)
    source.withUnsafeBufferPointer { s in
        out.withUnsafeMutableBufferPointer { d in
            interpolatePositionEmbedding(s.baseAddress!, into: d.baseAddress!, prefixTokens: prefixTokens,
                                         oldGrid: oldGrid, newGrid: newGrid, width: width, mode: mode)
        }
    }
    return out
}
