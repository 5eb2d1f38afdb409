import Foundation
import Kernels

/// The evaluation transform of CLIP (OpenAI, open_clip, HF `CLIPImageProcessor`) and timm:
///
///     resize the short side to `resizeShortSide` (long side ⌊resize·long/short⌋), PIL filter
///     center crop `cropSize` × `cropSize`   (offsets round((H − crop)/2), half to even)
///     x = (byte / 255 − mean[c]) / std[c]  float32, NCHW
///
/// as torchvision's `Resize(resizeShortSide, interpolation) → CenterCrop(cropSize) →
/// ToTensor → Normalize(mean, std)` on a PIL image. timm's `crop_pct` gives
/// `resizeShortSide = ⌊cropSize / crop_pct⌋`; CLIP resizes to the crop size.
///
/// The resize reproduces Pillow's fixed-point separable resampling (horizontal then vertical
/// pass, each rounded and clamped to uint8; the filter is widened by the scale factor when
/// shrinking, i.e. antialiased), so the pixels agree with torchvision-on-PIL up to float32
/// rounding of the normalisation (measured in ImportTests: ≤ 1 ulp-level, see
/// docs/running-the-paper-setup.md).
public struct ImagePreprocessing: Codable, Equatable, Sendable {
    public var resizeShortSide: Int
    public var cropSize: Int
    public var filter: ResizeFilter
    public var mean: [Float]
    public var std: [Float]

    public init(resizeShortSide: Int, cropSize: Int, filter: ResizeFilter = .bicubic,
                mean: [Float], std: [Float]) {
        precondition(mean.count == 3 && std.count == 3, "ImagePreprocessing: mean and std need 3 values")
        precondition(resizeShortSide >= cropSize && cropSize > 0,
                     "ImagePreprocessing: resize \(resizeShortSide) must be ≥ crop \(cropSize) > 0")
        self.resizeShortSide = resizeShortSide
        self.cropSize = cropSize
        self.filter = filter
        self.mean = mean
        self.std = std
    }

    public static let openAIMean: [Float] = [0.48145466, 0.4578275, 0.40821073]
    public static let openAIStd: [Float] = [0.26862954, 0.26130258, 0.27577711]
    public static let imageNetMean: [Float] = [0.485, 0.456, 0.406]
    public static let imageNetStd: [Float] = [0.229, 0.224, 0.225]

    /// CLIP's transform at `size` (resize the short side to `size`, crop `size`).
    public static func clip(size: Int, mean: [Float] = openAIMean, std: [Float] = openAIStd) -> ImagePreprocessing {
        ImagePreprocessing(resizeShortSide: size, cropSize: size, mean: mean, std: std)
    }

    /// timm's `transforms_imagenet_eval`: resize to ⌊size / cropPct⌋, crop `size`.
    public static func timm(size: Int, cropPct: Double = 0.875, filter: ResizeFilter = .bicubic,
                            mean: [Float] = imageNetMean, std: [Float] = imageNetStd) -> ImagePreprocessing {
        ImagePreprocessing(resizeShortSide: Int((Double(size) / cropPct).rounded(.down)), cropSize: size,
                           filter: filter, mean: mean, std: std)
    }

    /// The resized size (height, width) of a height × width image (torchvision's rule).
    public func resizedSize(height: Int, width: Int) -> (height: Int, width: Int) {
        let short = min(height, width), long = max(height, width)
        let newLong = Int(Double(resizeShortSide * long) / Double(short))
        return height <= width ? (resizeShortSide, newLong) : (newLong, resizeShortSide)
    }

    /// Uint8 RGB bytes (cropSize, cropSize, 3) after resize and crop, before normalisation.
    public func resizeAndCrop(_ image: UnsafeBufferPointer<UInt8>, height: Int, width: Int,
                              channels: Int) -> [UInt8] {
        precondition(image.count == height * width * channels, "ImagePreprocessing: \(image.count) bytes for \(height)×\(width)×\(channels)")
        let rgb = toRGB(image, count: height * width, channels: channels)
        let (h, w) = resizedSize(height: height, width: width)
        let resized = (h == height && w == width)
            ? rgb : resizePIL(rgb, height: height, width: width, channels: 3, toHeight: h, toWidth: w, filter: filter)
        // torchvision CenterCrop: int(round((H - crop) / 2.0)), Python's round (half to even).
        let top = Int((Double(h - cropSize) / 2).rounded(.toNearestOrEven))
        let left = Int((Double(w - cropSize) / 2).rounded(.toNearestOrEven))
        var out = [UInt8](repeating: 0, count: cropSize * cropSize * 3)
        for y in 0..<cropSize {
            let src = ((top + y) * w + left) * 3
            for x in 0..<(cropSize * 3) { out[y * cropSize * 3 + x] = resized[src + x] }
        }
        return out
    }

    /// Preprocesses one HWC uint8 image (1 channel: grey, replicated; 3: RGB; 4: RGBA, alpha
    /// dropped) into `output`, (3, cropSize, cropSize) float32.
    public func apply(_ image: UnsafeBufferPointer<UInt8>, height: Int, width: Int, channels: Int,
                      into output: UnsafeMutablePointer<Float>) {
        let cropped = resizeAndCrop(image, height: height, width: width, channels: channels)
        let n = cropSize * cropSize
        for c in 0..<3 {
            let m = mean[c], s = std[c], plane = output + c * n
            for i in 0..<n {
                // ToTensor divides in float32, Normalize subtracts then divides in float32.
                plane[i] = (Float(cropped[i * 3 + c]) / 255 - m) / s
            }
        }
    }

    /// Floats per preprocessed image.
    public var outputCount: Int { 3 * cropSize * cropSize }
}

private func toRGB(_ image: UnsafeBufferPointer<UInt8>, count: Int, channels: Int) -> [UInt8] {
    switch channels {
    case 3: return Array(image)
    case 1: return image.flatMap { [$0, $0, $0] }
    case 4:
        var out = [UInt8](repeating: 0, count: count * 3)
        for i in 0..<count { for c in 0..<3 { out[i * 3 + c] = image[i * 4 + c] } }
        return out
    default:
        preconditionFailure("ImagePreprocessing: \(channels) channels (expected 1, 3 or 4)")
    }
}

// MARK: - Pillow-compatible resampling

/// Pillow's fixed-point precision for 8-bit images: coefficients are scaled by 2²².
private let precisionBits = 32 - 8 - 2

/// Filter taps of one output pixel: `first` input index and normalised fixed-point weights.
private struct Taps {
    var first: [Int]
    var count: [Int]
    var weights: [Int32]   // outSize × maxTaps
    var maxTaps: Int
}

/// Pillow's coefficients for resampling `inSize` samples to `outSize`
/// (`ResamplingCoefficients`) in its 22-bit fixed point.
private func taps(inSize: Int, outSize: Int, filter: ResizeFilter) -> Taps {
    var c = ResamplingCoefficients()
    c.compute(inSize: inSize, outSize: outSize, filter: filter)
    return Taps(first: c.first, count: c.count, weights: c.fixedPointWeights(bits: precisionBits), maxTaps: c.maxTaps)
}

@inline(__always) private func clip8(_ accumulator: Int64) -> UInt8 {
    let v = accumulator >> Int64(precisionBits)
    return v < 0 ? 0 : v > 255 ? 255 : UInt8(v)
}

/// Resizes interleaved uint8 `image` (height, width, channels) exactly as Pillow's
/// `Image.resize((toWidth, toHeight), filter)` on an 8-bit image: a horizontal pass over the
/// rows the vertical pass needs, then a vertical pass, each accumulating in fixed point
/// (start ½, sum of byte × weight) and clamping to 0…255. A pass whose size is unchanged
/// is skipped.
public func resizePIL(_ image: [UInt8], height: Int, width: Int, channels: Int,
                      toHeight: Int, toWidth: Int, filter: ResizeFilter) -> [UInt8] {
    precondition(image.count == height * width * channels, "resizePIL: wrong byte count")
    precondition(toHeight > 0 && toWidth > 0, "resizePIL: empty output")
    let horizontal = taps(inSize: width, outSize: toWidth, filter: filter)
    let vertical = taps(inSize: height, outSize: toHeight, filter: filter)
    let half = Int64(1) << Int64(precisionBits - 1)
    var source = image, rows = height, firstRow = 0
    var verticalFirst = vertical.first
    if toWidth != width {
        // Only rows first…last of the input are read by the vertical pass.
        firstRow = vertical.first[0]
        let lastRow = vertical.first[toHeight - 1] + vertical.count[toHeight - 1]
        rows = lastRow - firstRow
        verticalFirst = vertical.first.map { $0 - firstRow }
        var out = [UInt8](repeating: 0, count: rows * toWidth * channels)
        for y in 0..<rows {
            let inRow = (y + firstRow) * width * channels
            for x in 0..<toWidth {
                let lo = horizontal.first[x], n = horizontal.count[x], wBase = x * horizontal.maxTaps
                for c in 0..<channels {
                    var acc = half
                    for k in 0..<n {
                        acc += Int64(image[inRow + (lo + k) * channels + c]) * Int64(horizontal.weights[wBase + k])
                    }
                    out[(y * toWidth + x) * channels + c] = clip8(acc)
                }
            }
        }
        source = out
    } else if toHeight == height {
        return image
    }
    guard toHeight != height else { return source }
    let W = toWidth
    var out = [UInt8](repeating: 0, count: toHeight * W * channels)
    for y in 0..<toHeight {
        let lo = verticalFirst[y], n = vertical.count[y], wBase = y * vertical.maxTaps
        for x in 0..<W {
            for c in 0..<channels {
                var acc = half
                for k in 0..<n {
                    acc += Int64(source[((lo + k) * W + x) * channels + c]) * Int64(vertical.weights[wBase + k])
                }
                out[(y * W + x) * channels + c] = clip8(acc)
            }
        }
    }
    _ = rows
    return out
}
