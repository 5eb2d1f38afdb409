// A minimal PNG writer (8-bit RGB or grey, zlib-compressed, "Sub" row filter), for
// looking at generated data.


public enum PNGWriter {
    /// Encodes `pixels` (height × width × channels uint8, channels 1 or 3) as PNG bytes.
    public static func encode(_ pixels: [UInt8], width: Int, height: Int, channels: Int) -> [UInt8] {
        precondition(channels == 1 || channels == 3, "PNGWriter: channels must be 1 or 3")
        precondition(pixels.count == width * height * channels, "PNGWriter: \(pixels.count) bytes for \(height)×\(width)×\(channels)")
        let stride = width * channels
        var raw = [UInt8](repeating: 0, count: height * (stride + 1))
        for y in 0..<height {
            raw[y * (stride + 1)] = 1   // filter type 1: Sub
            for i in 0..<stride {
                let left = i >= channels ? pixels[y * stride + i - channels] : 0
                raw[y * (stride + 1) + 1 + i] = pixels[y * stride + i] &- left
            }
        }
        let compressed = Zlib.deflate(raw, format: .zlib, level: 9)

        var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        func bigEndian(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }
        func chunk(_ type: String, _ data: [UInt8]) {
            let body = Array(type.utf8) + data
            png += bigEndian(UInt32(data.count)) + body
            png += bigEndian(crc32Update(0, body, count: body.count))
        }
        chunk("IHDR", bigEndian(UInt32(width)) + bigEndian(UInt32(height)) + [8, channels == 3 ? 2 : 0, 0, 0, 0])
        chunk("IDAT", compressed)
        chunk("IEND", [])
        return png
    }

    /// Writes a PNG file atomically.
    public static func write(_ pixels: [UInt8], width: Int, height: Int, channels: Int, to path: String) throws {
        try AtomicFileWriter.write(encode(pixels, width: width, height: height, channels: channels), to: path)
    }
}
