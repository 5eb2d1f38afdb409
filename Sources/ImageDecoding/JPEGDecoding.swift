// JPEG through libjpeg-turbo (Sources/CJPEG), decoded straight to RGB with the library's
// defaults (islow IDCT, fancy upsampling), as Pillow does; grey JPEGs come out replicated.
// Pillow's bundled libjpeg-turbo may differ from the system's by one level at a few pixels.
import CJPEG
import Formats
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

enum JPEGDecoding {
    static func decode(_ bytes: UnsafeRawBufferPointer, path: String) throws -> RGBImage {
        var decoding = clipit_jpeg_decoding()
        decoding.data = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)
        decoding.size = UInt(bytes.count)
        decoding.max_pixels = ImageDecoder.maxPixels
        let status = withUnsafeMutablePointer(to: &decoding) { clipit_jpeg_decode($0) }
        defer { free(decoding.pixels) }
        let message = string(fromCharArray: decoding.message)
        guard status == 0, let pixels = decoding.pixels else {
            if decoding.unsupported != 0 {
                throw ImportError(path: path, kind: .unsupported,
                                  reason: "\(message) (\(decoding.source_components) components) cannot become RGB exactly; convert it to RGB first")
            }
            if decoding.too_large != 0 {
                throw ImportError(path: path, kind: .unsupported,
                                  reason: "\(message), more than \(ImageDecoder.maxPixels); tile or downscale it first")
            }
            let truncated = message.contains("Premature end")
            throw ImportError(path: path, kind: truncated ? .truncated : .corrupt,
                              reason: "\(truncated ? "truncated JPEG" : "cannot decode the JPEG") (libjpeg: \(message)); the file is incomplete or corrupt — re-export it")
        }
        let (width, height) = (Int(decoding.width), Int(decoding.height))
        return RGBImage(width: width, height: height,
                        pixels: Array(UnsafeBufferPointer(start: pixels, count: width * height * 3)))
    }
}
