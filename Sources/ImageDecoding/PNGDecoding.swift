// PNG through libpng (Sources/CPNG): every colour type and bit depth, Adam7, every chunk
// CRC checked by libpng; the samples are converted to RGB by Pillow's rules (PillowRGB).
import CPNG
import Formats
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

enum PNGDecoding {
    static func decode(_ bytes: UnsafeRawBufferPointer, path: String) throws -> RGBImage {
        var decoding = clipit_png_decoding()
        decoding.data = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)
        decoding.size = bytes.count
        decoding.max_pixels = ImageDecoder.maxPixels
        let status = withUnsafeMutablePointer(to: &decoding) { clipit_png_decode($0) }
        defer { free(decoding.pixels) }
        let message = string(fromCharArray: decoding.message)
        guard status == 0, let pixels = decoding.pixels else {
            if decoding.too_large != 0 {
                throw ImportError(path: path, kind: .unsupported,
                                  reason: "\(message), more than \(ImageDecoder.maxPixels); tile or downscale it first")
            }
            let kind: ImportError.Kind = decoding.truncated != 0 || message.contains("Not enough image data") ? .truncated
                : message.contains("CRC") ? .checksumMismatch
                : message.contains("unhandled critical chunk") ? .unsupported : .corrupt
            let what = kind == .truncated ? "truncated PNG" : "cannot decode the PNG"
            let warning = string(fromCharArray: decoding.warning)
            let detail = warning.isEmpty || warning == message ? message : "\(message), after the warning: \(warning)"
            throw ImportError(path: path, kind: kind,
                              reason: "\(what) (libpng: \(detail)); the file is incomplete or corrupt — re-export it")
        }
        let layout = SampleLayout(channels: Int(decoding.channels), bitDepth: Int(decoding.bit_depth),
                                  colour: decoding.color_type & 2 != 0)
        let (width, height) = (Int(decoding.width), Int(decoding.height))
        let rowBytes = width * layout.channels * layout.bitDepth / 8
        return RGBImage(width: width, height: height,
                        pixels: PillowRGB.convert(pixels, width: width, height: height, rowBytes: rowBytes, layout: layout))
    }
}
