import Formats

/// A small PNG of a dataset image for the page: images larger than `maxSide` pixels are
/// shrunk by the smallest integer factor f that brings both sides to at most `maxSide`,
/// each output pixel the mean of an f × f block (the right and bottom edges that do not
/// fill a block are dropped). Encoded with the project's `PNGWriter`.
public enum Thumbnail {
    /// The PNG bytes and size of an HWC uint8 image of 1 (grey), 3 (RGB) or 4 (RGBA,
    /// shown without its alpha) channels.
    /// - Throws: `ReportingError` (naming `source`) for another channel count.
    public static func png(_ pixels: UnsafeBufferPointer<UInt8>, height: Int, width: Int, channels: Int,
                           maxSide: Int = 128, source: String) throws -> (png: [UInt8], width: Int, height: Int) {
        guard [1, 3, 4].contains(channels) else {
            throw ReportingError(path: source, "images with \(channels) channels cannot be shown; the gallery "
                                     + "needs grey (1), RGB (3) or RGBA (4) images")
        }
        let (shrunk, w, h) = shrink(pixels, height: height, width: width, channels: channels, maxSide: maxSide)
        guard channels == 4 else { return (PNGWriter.encode(shrunk, width: w, height: h, channels: channels), w, h) }
        var rgb = [UInt8](repeating: 0, count: w * h * 3)
        for i in 0..<(w * h) { for c in 0..<3 { rgb[i * 3 + c] = shrunk[i * 4 + c] } }
        return (PNGWriter.encode(rgb, width: w, height: h, channels: 3), w, h)
    }

    /// The block-mean shrink described above; the image unchanged when it already fits.
    public static func shrink(_ pixels: UnsafeBufferPointer<UInt8>, height: Int, width: Int, channels: Int,
                              maxSide: Int) -> (pixels: [UInt8], width: Int, height: Int) {
        precondition(pixels.count == height * width * channels, "Thumbnail: \(pixels.count) bytes for \(height)×\(width)×\(channels)")
        let factor = max(1, (max(height, width) + maxSide - 1) / max(maxSide, 1))
        guard factor > 1 else { return (Array(pixels), width, height) }
        let h = max(1, height / factor), w = max(1, width / factor)
        var out = [UInt8](repeating: 0, count: h * w * channels)
        let area = min(factor, height) * min(factor, width)
        for y in 0..<h {
            for x in 0..<w {
                for c in 0..<channels {
                    var sum = 0
                    for dy in 0..<min(factor, height) {
                        for dx in 0..<min(factor, width) {
                            sum += Int(pixels[((y * factor + dy) * width + x * factor + dx) * channels + c])
                        }
                    }
                    out[(y * w + x) * channels + c] = UInt8((sum + area / 2) / area)
                }
            }
        }
        return (out, w, h)
    }
}
