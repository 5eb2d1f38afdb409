// Image transforms: uint8 HWC → (geometry, colour) → float32 CHW normalised, written into
// a caller-provided batch buffer. Random choices are drawn from a generator seeded by
// derivedSeed(seed, epoch, sample index), so a sample is transformed identically whatever
// the number of ranks or threads and the order in which samples are visited.
import Foundation
import Kernels


/// Per-channel normalisation x ↦ (x/255 − mean[c]) / std[c] of an RGB image.
public struct Normalization: Equatable, Sendable {
    public var mean: [Float]
    public var std: [Float]

    public init(mean: [Float], std: [Float]) {
        precondition(mean.count == 3 && std.count == 3 && std.allSatisfy { $0 > 0 },
                     "Normalization: need 3 means and 3 positive standard deviations")
        self.mean = mean
        self.std = std
    }

    /// OpenAI CLIP (also CONCH, QuiltNet, PLIP).
    public static let clip = Normalization(mean: [0.48145466, 0.4578275, 0.40821073],
                                           std: [0.26862954, 0.26130258, 0.27577711])
    /// ImageNet (timm / torchvision defaults; UNI, kaiko).
    public static let imagenet = Normalization(mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225])
    /// No normalisation beyond /255 (tests, debugging).
    public static let unit = Normalization(mean: [0, 0, 0], std: [1, 1, 1])

    /// The names configs, command lines and retriever exports use.
    public static let names = NormalizationName.names

    /// The normalisation called `name` (`clip`, `imagenet`, `unit`); nil for any other name.
    public init?(named name: String) {
        guard let known = NormalizationName(rawValue: name) else { return nil }
        self = known.normalization
    }
}

/// The named normalisations, as configurations and command lines choose them.
public enum NormalizationName: String, NamedChoice {
    case clip, imagenet, unit

    public var normalization: Normalization {
        switch self {
        case .clip: return .clip
        case .imagenet: return .imagenet
        case .unit: return .unit
        }
    }
}

/// Colour jitter ranges, as torchvision's `ColorJitter`: brightness, contrast and
/// saturation factors are drawn uniformly from [1 − v, 1 + v], the hue shift from
/// [−hue, hue] (a fraction of a full turn, at most 0.5).
public struct ColorJitter: Equatable, Sendable {
    public var brightness: Float
    public var contrast: Float
    public var saturation: Float
    public var hue: Float

    public init(brightness: Float = 0, contrast: Float = 0, saturation: Float = 0, hue: Float = 0) {
        precondition(brightness >= 0 && contrast >= 0 && saturation >= 0 && hue >= 0 && hue <= 0.5,
                     "ColorJitter: ranges must be non-negative and hue at most 0.5")
        (self.brightness, self.contrast, self.saturation, self.hue) = (brightness, contrast, saturation, hue)
    }
}

/// torchvision's `RandomResizedCrop` parameters: the crop covers a fraction `scale` of the
/// image area with aspect ratio (w/h) in `ratio` (log-uniform); 10 attempts, then a
/// centre crop.
public struct RandomResizedCrop: Equatable, Sendable {
    public var scale: ClosedRange<Double>
    public var ratio: ClosedRange<Double>

    public init(scale: ClosedRange<Double> = 0.5...1, ratio: ClosedRange<Double> = (3.0 / 4)...(4.0 / 3)) {
        precondition(scale.lowerBound > 0 && scale.upperBound <= 1 && ratio.lowerBound > 0,
                     "RandomResizedCrop: scale must lie in (0, 1] and ratio be positive")
        self.scale = scale
        self.ratio = ratio
    }
}

/// What to do to every image. Output images are square, `outputSize` × `outputSize`, RGB.
public struct TransformConfig: Equatable, Sendable {
    public var outputSize: Int
    public var interpolation: ResizeFilter
    public var normalization: Normalization
    /// Without a random crop: the shorter side is resized to this (default `outputSize`),
    /// then the centre `outputSize` square is cropped (CLIP / timm evaluation).
    public var resizeSize: Int?
    /// Training: a random crop resized to `outputSize` (replaces resize + centre crop).
    public var randomResizedCrop: RandomResizedCrop?
    /// Each with probability 1/2.
    public var horizontalFlip: Bool
    public var verticalFlip: Bool
    /// A uniformly chosen multiple of 90° (histology has no canonical orientation).
    public var rotate90: Bool
    public var colorJitter: ColorJitter?

    public init(outputSize: Int, interpolation: ResizeFilter = .bicubic, normalization: Normalization,
                resizeSize: Int? = nil, randomResizedCrop: RandomResizedCrop? = nil,
                horizontalFlip: Bool = false, verticalFlip: Bool = false, rotate90: Bool = false,
                colorJitter: ColorJitter? = nil) {
        precondition(outputSize > 0, "TransformConfig: outputSize must be positive")
        precondition((resizeSize ?? outputSize) >= outputSize, "TransformConfig: resizeSize must be at least outputSize")
        self.outputSize = outputSize
        self.interpolation = interpolation
        self.normalization = normalization
        self.resizeSize = resizeSize
        self.randomResizedCrop = randomResizedCrop
        self.horizontalFlip = horizontalFlip
        self.verticalFlip = verticalFlip
        self.rotate90 = rotate90
        self.colorJitter = colorJitter
    }

    /// Deterministic evaluation transform: bicubic resize of the shorter side, centre crop.
    public static func evaluation(outputSize: Int, normalization: Normalization,
                                  interpolation: ResizeFilter = .bicubic, resizeSize: Int? = nil) -> TransformConfig {
        TransformConfig(outputSize: outputSize, interpolation: interpolation, normalization: normalization,
                        resizeSize: resizeSize)
    }

    /// Histology training defaults: random resized crop (scale 0.5–1), both flips, 90°
    /// rotations, mild colour jitter (0.2, 0.2, 0.2, hue 0.02), bilinear.
    public static func training(outputSize: Int, normalization: Normalization,
                                interpolation: ResizeFilter = .bilinear) -> TransformConfig {
        TransformConfig(outputSize: outputSize, interpolation: interpolation, normalization: normalization,
                        randomResizedCrop: RandomResizedCrop(), horizontalFlip: true, verticalFlip: true,
                        rotate90: true,
                        colorJitter: ColorJitter(brightness: 0.2, contrast: 0.2, saturation: 0.2, hue: 0.02))
    }

    /// Whether any random choice is involved.
    public var isRandom: Bool {
        randomResizedCrop != nil || horizontalFlip || verticalFlip || rotate90 || colorJitter != nil
    }
}

/// The concrete choices for one sample (drawn by `ImageTransformer.augmentation`).
public struct Augmentation: Equatable, Sendable {
    /// The source region resampled to the output square, in source pixels (may be fractional).
    public var cropTop: Double, cropLeft: Double, cropHeight: Double, cropWidth: Double
    public var horizontalFlip = false
    public var verticalFlip = false
    /// Counter-clockwise quarter turns applied after the flips (0–3).
    public var quarterTurns = 0
    public var brightness: Float = 1, contrast: Float = 1, saturation: Float = 1
    /// Hue shift, in turns.
    public var hue: Float = 0

    public init(cropTop: Double, cropLeft: Double, cropHeight: Double, cropWidth: Double) {
        (self.cropTop, self.cropLeft, self.cropHeight, self.cropWidth) = (cropTop, cropLeft, cropHeight, cropWidth)
    }
}

/// Applies a `TransformConfig`. Holds reusable scratch buffers, so use one transformer per
/// thread; nothing is allocated per sample once the buffers have grown to the largest
/// input seen.
public final class ImageTransformer {
    public let config: TransformConfig
    private var rowTaps = ResamplingCoefficients()
    private var columnTaps = ResamplingCoefficients()
    private var rowWeights: [Float] = []      // (S, rowTaps.maxTaps)
    private var columnWeights: [Float] = []   // (S, columnTaps.maxTaps)
    private var horizontal: [Float] = []   // (source rows used, S, 3)
    private var resampled: [Float]         // (S, S, 3), values in [0, 1]

    public init(config: TransformConfig) {
        self.config = config
        resampled = [Float](repeating: 0, count: config.outputSize * config.outputSize * 3)
    }

    /// Floats written per image: 3 × outputSize × outputSize.
    public var outputCount: Int { 3 * config.outputSize * config.outputSize }

    /// The random choices for sample `index` in `epoch` (the identity geometry and colour
    /// for a non-random configuration).
    public func augmentation(height: Int, width: Int, seed: UInt64, epoch: Int, index: Int) -> Augmentation {
        let S = config.outputSize
        var generator = RandomGenerator(seed: derivedSeed(seed, epoch, index))
        var result: Augmentation
        if let crop = config.randomResizedCrop {
            result = Self.randomCrop(crop, height: height, width: width, generator: &generator)
        } else {
            // Resize the shorter side to R (integer sizes as torchvision), centre crop S.
            let R = config.resizeSize ?? S
            let resizedHeight = height <= width ? R : Int(Double(R) * Double(height) / Double(width))
            let resizedWidth = width <= height ? R : Int(Double(R) * Double(width) / Double(height))
            let top = ((Double(resizedHeight - S)) / 2).rounded()
            let left = ((Double(resizedWidth - S)) / 2).rounded()
            let sy = Double(height) / Double(resizedHeight), sx = Double(width) / Double(resizedWidth)
            result = Augmentation(cropTop: top * sy, cropLeft: left * sx, cropHeight: Double(S) * sy, cropWidth: Double(S) * sx)
        }
        if config.horizontalFlip { result.horizontalFlip = generator.nextUInt64() >> 63 == 1 }
        if config.verticalFlip { result.verticalFlip = generator.nextUInt64() >> 63 == 1 }
        if config.rotate90 { result.quarterTurns = generator.nextInt(upperBound: 4) }
        if let jitter = config.colorJitter {
            result.brightness = generator.uniform(1 - jitter.brightness, 1 + jitter.brightness)
            result.contrast = generator.uniform(1 - jitter.contrast, 1 + jitter.contrast)
            result.saturation = generator.uniform(1 - jitter.saturation, 1 + jitter.saturation)
            result.hue = generator.uniform(-jitter.hue, jitter.hue)
        }
        return result
    }

    private static func randomCrop(_ crop: RandomResizedCrop, height: Int, width: Int,
                                   generator: inout RandomGenerator) -> Augmentation {
        let area = Double(height * width)
        let logLow = log(crop.ratio.lowerBound), logHigh = log(crop.ratio.upperBound)
        for _ in 0..<10 {
            let target = area * (crop.scale.lowerBound + (crop.scale.upperBound - crop.scale.lowerBound) * Double(generator.nextFloat()))
            let aspect = exp(logLow + (logHigh - logLow) * Double(generator.nextFloat()))
            let w = Int((target * aspect).squareRoot().rounded())
            let h = Int((target / aspect).squareRoot().rounded())
            if w > 0, h > 0, w <= width, h <= height {
                let top = generator.nextInt(upperBound: height - h + 1)
                let left = generator.nextInt(upperBound: width - w + 1)
                return Augmentation(cropTop: Double(top), cropLeft: Double(left), cropHeight: Double(h), cropWidth: Double(w))
            }
        }
        let inRatio = Double(width) / Double(height)
        var w = width, h = height
        if inRatio < crop.ratio.lowerBound {
            h = Int((Double(w) / crop.ratio.lowerBound).rounded())
        } else if inRatio > crop.ratio.upperBound {
            w = Int((Double(h) * crop.ratio.upperBound).rounded())
        }
        return Augmentation(cropTop: Double((height - h) / 2), cropLeft: Double((width - w) / 2),
                            cropHeight: Double(h), cropWidth: Double(w))
    }

    /// Transforms sample `index` (its augmentation drawn from (seed, epoch, index)) into
    /// `output`, 3 × S × S floats (CHW).
    public func apply(_ image: UnsafeBufferPointer<UInt8>, height: Int, width: Int, channels: Int,
                      seed: UInt64, epoch: Int, index: Int, into output: UnsafeMutablePointer<Float>) {
        let choice = augmentation(height: height, width: width, seed: seed, epoch: epoch, index: index)
        apply(image, height: height, width: width, channels: channels, augmentation: choice, into: output)
    }

    /// Transforms one uint8 HWC image (1, 3 or 4 channels; grey is replicated, alpha
    /// ignored) with the given choices into `output`, 3 × S × S floats (CHW):
    /// resample the crop box (separable, antialiased like PIL), colour jitter in [0, 1]
    /// (brightness, contrast, saturation, hue, in this order, clamped after each), then
    /// flips and quarter turns, then normalisation.
    public func apply(_ image: UnsafeBufferPointer<UInt8>, height: Int, width: Int, channels: Int,
                      augmentation a: Augmentation, into output: UnsafeMutablePointer<Float>) {
        precondition(image.count == height * width * channels && [1, 3, 4].contains(channels),
                     "ImageTransformer.apply: \(image.count) bytes for \(height)×\(width)×\(channels)")
        let S = config.outputSize
        rowTaps.compute(inSize: height, outSize: S, boxStart: a.cropTop, boxSize: a.cropHeight, filter: config.interpolation)
        columnTaps.compute(inSize: width, outSize: S, boxStart: a.cropLeft, boxSize: a.cropWidth, filter: config.interpolation)
        rowTaps.floatWeights(into: &rowWeights)
        columnTaps.floatWeights(into: &columnWeights)
        let firstRow = rowTaps.first[0]
        let lastRow = rowTaps.first[S - 1] + rowTaps.count[S - 1]   // rows are monotone
        let usedRows = lastRow - firstRow
        if horizontal.count < usedRows * S * 3 { horizontal = [Float](repeating: 0, count: usedRows * S * 3) }

        let src = image.baseAddress!
        let (channelR, channelG, channelB) = channels == 1 ? (0, 0, 0) : (0, 1, 2)
        horizontal.withUnsafeMutableBufferPointer { hp in
            let h = hp.baseAddress!
            columnWeights.withUnsafeBufferPointer { wp in
                for r in 0..<usedRows {
                    let row = src + (firstRow + r) * width * channels
                    for x in 0..<S {
                        var (sr, sg, sb): (Float, Float, Float) = (0, 0, 0)
                        let start = columnTaps.first[x], n = columnTaps.count[x]
                        let w = wp.baseAddress! + x * columnTaps.maxTaps
                        for k in 0..<n {
                            let p = row + (start + k) * channels
                            sr += w[k] * Float(p[channelR])
                            sg += w[k] * Float(p[channelG])
                            sb += w[k] * Float(p[channelB])
                        }
                        let o = h + (r * S + x) * 3
                        o[0] = sr; o[1] = sg; o[2] = sb
                    }
                }
            }
        }
        resampled.withUnsafeMutableBufferPointer { rp in
            horizontal.withUnsafeBufferPointer { hp in
                rowWeights.withUnsafeBufferPointer { wp in
                    let out = rp.baseAddress!, h = hp.baseAddress!
                    for y in 0..<S {
                        let start = rowTaps.first[y] - firstRow, n = rowTaps.count[y]
                        let w = wp.baseAddress! + y * rowTaps.maxTaps
                        for i in 0..<(S * 3) {
                            var sum: Float = 0
                            for k in 0..<n { sum += w[k] * h[(start + k) * S * 3 + i] }
                            out[y * S * 3 + i] = min(max(sum / 255, 0), 1)
                        }
                    }
                }
            }
        }
        if config.colorJitter != nil { jitter(a) }
        writeNormalised(a, into: output)
    }

    /// Colour jitter in place on `resampled` (torchvision's formulas on [0, 1] images; the
    /// hue shift is a rotation of the chroma plane in YIQ space, a cheap stand-in for an
    /// HSV hue shift that agrees with it to first order for small shifts).
    private func jitter(_ a: Augmentation) {
        let n = config.outputSize * config.outputSize
        resampled.withUnsafeMutableBufferPointer { bp in
            let p = bp.baseAddress!
            @inline(__always) func clamp(_ v: Float) -> Float { min(max(v, 0), 1) }
            @inline(__always) func gray(_ q: UnsafeMutablePointer<Float>) -> Float { 0.299 * q[0] + 0.587 * q[1] + 0.114 * q[2] }
            if a.brightness != 1 {
                for i in 0..<(3 * n) { p[i] = clamp(p[i] * a.brightness) }
            }
            if a.contrast != 1 {
                var mean: Float = 0
                for i in 0..<n { mean += gray(p + 3 * i) }
                mean /= Float(n)
                for i in 0..<(3 * n) { p[i] = clamp(a.contrast * p[i] + (1 - a.contrast) * mean) }
            }
            if a.saturation != 1 {
                for i in 0..<n {
                    let q = p + 3 * i, g = gray(q)
                    for c in 0..<3 { q[c] = clamp(a.saturation * q[c] + (1 - a.saturation) * g) }
                }
            }
            if a.hue != 0 {
                let angle = 2 * Float.pi * a.hue
                let (cosA, sinA) = (Float(cos(Double(angle))), Float(sin(Double(angle))))
                for i in 0..<n {
                    let q = p + 3 * i
                    let y = 0.299 * q[0] + 0.587 * q[1] + 0.114 * q[2]
                    let ci = 0.596 * q[0] - 0.274 * q[1] - 0.322 * q[2]
                    let cq = 0.211 * q[0] - 0.523 * q[1] + 0.312 * q[2]
                    let i2 = cosA * ci - sinA * cq, q2 = sinA * ci + cosA * cq
                    q[0] = clamp(y + 0.956 * i2 + 0.621 * q2)
                    q[1] = clamp(y - 0.272 * i2 - 0.647 * q2)
                    q[2] = clamp(y - 1.106 * i2 + 1.703 * q2)
                }
            }
        }
    }

    /// Output (c, y, x) = normalise(resampled at the pixel that flips-then-turns brings to (y, x)).
    private func writeNormalised(_ a: Augmentation, into output: UnsafeMutablePointer<Float>) {
        let S = config.outputSize
        let mean = config.normalization.mean, std = config.normalization.std
        let scale = (1 / std[0], 1 / std[1], 1 / std[2])
        resampled.withUnsafeBufferPointer { rp in
            let p = rp.baseAddress!
            for y in 0..<S {
                for x in 0..<S {
                    // Undo the k counter-clockwise turns: a ccw turn maps source (r, c) to
                    // (S−1−c, r), so output (y, x) reads the flipped image at (x, S−1−y) per turn.
                    var (sy, sx) = (y, x)
                    for _ in 0..<a.quarterTurns { (sy, sx) = (sx, S - 1 - sy) }
                    if a.verticalFlip { sy = S - 1 - sy }
                    if a.horizontalFlip { sx = S - 1 - sx }
                    let q = p + (sy * S + sx) * 3
                    let o = y * S + x
                    output[o] = (q[0] - mean[0]) * scale.0
                    output[S * S + o] = (q[1] - mean[1]) * scale.1
                    output[2 * S * S + o] = (q[2] - mean[2]) * scale.2
                }
            }
        }
    }
}
