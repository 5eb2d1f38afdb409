import Foundation
import Kernels

// One resampler for every image path: the augmentation (`ImageTransformer`, float output
// over a random crop box) and the Pillow-exact evaluation preprocessing
// (`ImagePreprocessing`, 8-bit fixed point) share the filter and its coefficients; they
// differ only in how the normalised coefficients are applied.

/// Resampling filter, as Pillow's `Image.BICUBIC` / `Image.BILINEAR` (which CLIP, timm
/// and torchvision-on-PIL preprocessing use).
public enum ResizeFilter: String, NamedChoice {
    /// Keys cubic convolution, a = −0.5, support 2 (PIL's bicubic).
    case bicubic
    /// Triangle filter, support 1.
    case bilinear

    var support: Double { self == .bicubic ? 2 : 1 }

    @inline(__always)
    func weight(_ x: Double) -> Double {
        let x = abs(x)
        switch self {
        case .bicubic:
            let a = -0.5
            if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
            if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
            return 0
        case .bilinear:
            return x < 1 ? 1 - x : 0
        }
    }
}

/// Normalised filter coefficients for one axis (Pillow's `precompute_coeffs`, with a crop
/// box): output i covers input positions around centre = boxStart + (i + ½)·scale,
/// scale = boxSize / outSize; the filter is stretched by max(scale, 1) when shrinking
/// (antialiasing); taps are the inputs round(centre ± support) inside the image, weighted
/// filter((j − centre + ½)·(1/filterScale)) and normalised to sum 1 (in Double). A box
/// that covers no input pixel takes the nearest one.
struct ResamplingCoefficients {
    /// First input index of each output.
    var first: [Int] = []
    /// Taps of each output (at most `maxTaps`).
    var count: [Int] = []
    /// Normalised weights, `(outSize, maxTaps)`.
    var weights: [Double] = []
    var maxTaps = 0

    /// Recomputes the coefficients in place (the arrays are reused when large enough).
    mutating func compute(inSize: Int, outSize: Int, boxStart: Double = 0, boxSize: Double? = nil,
                          filter: ResizeFilter) {
        let scale = (boxSize ?? Double(inSize)) / Double(outSize)
        let filterScale = max(scale, 1), inverse = 1 / filterScale
        let support = filter.support * filterScale
        maxTaps = Int(support.rounded(.up)) * 2 + 1
        if first.count != outSize {
            first = [Int](repeating: 0, count: outSize)
            count = first
        }
        if weights.count < outSize * maxTaps { weights = [Double](repeating: 0, count: outSize * maxTaps) }
        for i in 0..<outSize {
            let center = boxStart + (Double(i) + 0.5) * scale
            let low = max(Int((center - support + 0.5).rounded(.down)), 0)
            let high = min(Int((center + support + 0.5).rounded(.down)), inSize)
            let n = min(max(high - low, 0), maxTaps)
            let row = i * maxTaps
            var total = 0.0
            for k in 0..<n {
                weights[row + k] = filter.weight((Double(low + k) - center + 0.5) * inverse)
                total += weights[row + k]
            }
            first[i] = min(low, inSize - 1)
            if n == 0 || total == 0 {   // degenerate box: nearest pixel
                count[i] = 1
                weights[row] = 1
                continue
            }
            count[i] = n
            for k in 0..<n { weights[row + k] /= total }
        }
    }

    /// The weights as Float32 (the augmentation's float resampling), into `out`.
    func floatWeights(into out: inout [Float]) {
        if out.count < weights.count { out = [Float](repeating: 0, count: weights.count) }
        for i in weights.indices { out[i] = Float(weights[i]) }
    }

    /// The weights in Pillow's 8-bit fixed point: scaled by 2^`bits`, rounded half away
    /// from zero (C's `(int)(0.5 + w·2^bits)`, `normalize_coeffs_8bpc`).
    func fixedPointWeights(bits: Int) -> [Int32] {
        let one = Double(1 << bits)
        return weights.map { v in Int32(v < 0 ? -0.5 + v * one : 0.5 + v * one) }
    }
}
