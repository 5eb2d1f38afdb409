// PNG decoding (ISO/IEC 15948) to 8-bit RGB, for importing image folders.
//
// Supported: every colour type (greyscale 0, RGB 2, palette 3, grey+alpha 4, RGBA 6) at
// every bit depth the standard allows (1, 2, 4, 8, 16), all five row filters, Adam7
// interlacing, IDAT split over any number of chunks. Every chunk's CRC is checked; IHDR
// is validated; unknown critical chunks are rejected, ancillary chunks skipped.
//
// Output is always RGB uint8 HWC: alpha is dropped (not composited), grey is replicated,
// palette indices are looked up (tRNS is accepted and ignored), 16-bit samples keep their
// high byte (libpng's `png_set_strip_16`, and what PIL does for 16-bit RGB), and 1/2/4-bit
// greyscale is scaled to 0…255 (v · 255 / (2^depth − 1)).


/// A decoded image: `pixels` is height × width × 3 bytes, row-major, RGB.
public struct PNGImage: Equatable, Sendable {
    public var width: Int
    public var height: Int
    public var pixels: [UInt8]
    /// The file's colour type (0, 2, 3, 4, 6) and bit depth, for diagnostics.
    public var colorType: Int
    public var bitDepth: Int
    public var interlaced: Bool

    public init(width: Int, height: Int, pixels: [UInt8], colorType: Int = 2, bitDepth: Int = 8, interlaced: Bool = false) {
        self.width = width
        self.height = height
        self.pixels = pixels
        self.colorType = colorType
        self.bitDepth = bitDepth
        self.interlaced = interlaced
    }
}

/// The fields of a PNG's IHDR chunk.
public struct PNGHeader: Equatable, Sendable {
    public var width: Int
    public var height: Int
    public var bitDepth: Int
    public var colorType: Int
    public var interlaced: Bool

    /// Samples per pixel of the colour type.
    var channels: Int {
        switch colorType {
        case 2: return 3
        case 4: return 2
        case 6: return 4
        default: return 1   // 0 (grey), 3 (palette); other types are rejected when the header is read
        }
    }
    /// Bits per pixel.
    var bitsPerPixel: Int { channels * bitDepth }
    /// Bytes per complete pixel, at least 1 (the filters' "bpp").
    var filterStride: Int { max(1, bitsPerPixel / 8) }
    /// Bytes of one unfiltered row of `width` pixels (without the filter-type byte).
    func rowBytes(_ width: Int) -> Int { (width * bitsPerPixel + 7) / 8 }
}

public enum PNGDecoder {
    /// The 8 bytes every PNG starts with.
    public static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    /// Largest image accepted, in pixels (a guard against corrupt or hostile sizes).
    public static let maxPixels = 1 << 28

    /// Decodes the PNG file at `path`.
    public static func decode(path: String) throws -> PNGImage {
        let file = try openForImport(path)
        return try decode(file.bytes, path: path)
    }

    /// Reads only the signature and IHDR of the file at `path` (cheap: one page).
    public static func header(path: String) throws -> PNGHeader {
        let file = try openForImport(path)
        return try header(file.bytes, path: path)
    }

    /// Parses and validates the signature and IHDR chunk.
    public static func header(_ bytes: UnsafeRawBufferPointer, path: String) throws -> PNGHeader {
        func fail(_ kind: ImportError.Kind, _ reason: String) -> ImportError {
            ImportError(path: path, kind: kind, reason: reason)
        }
        guard bytes.count >= 8, zip(bytes.prefix(8), signature).allSatisfy({ $0 == $1 }) else {
            throw fail(.badSignature, "not a PNG file (the 8-byte PNG signature is missing); convert the image to PNG")
        }
        guard bytes.count >= 8 + 12 + 13 else {
            throw fail(.truncated, "truncated PNG: \(bytes.count) bytes cannot hold the IHDR chunk; the file is incomplete")
        }
        let length = readBigEndian32(bytes, 8)
        guard length == 13, bytes[12] == 0x49, bytes[13] == 0x48, bytes[14] == 0x44, bytes[15] == 0x52 else {
            throw fail(.corrupt, "the first chunk is not a 13-byte IHDR; the file is corrupt")
        }
        let stored = readBigEndian32(bytes, 8 + 8 + 13)
        let computed = crc32Update(0, bytes.baseAddress! + 12, count: 4 + 13)
        guard stored == computed else {
            throw fail(.checksumMismatch, "bad CRC in chunk IHDR (stored \(hex32(stored)), computed \(hex32(computed))); the file is corrupt")
        }
        let width = Int(readBigEndian32(bytes, 16)), height = Int(readBigEndian32(bytes, 20))
        let depth = Int(bytes[24]), colorType = Int(bytes[25])
        let compression = bytes[26], filter = bytes[27], interlace = bytes[28]
        guard width > 0, height > 0, width <= Int(Int32.max), height <= Int(Int32.max) else {
            throw fail(.corrupt, "IHDR gives a \(width)×\(height) image; sizes must be positive; the file is corrupt")
        }
        let allowed: [Int: [Int]] = [0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16]]
        guard let depths = allowed[colorType] else {
            throw fail(.corrupt, "IHDR colour type \(colorType) is not a PNG colour type (0, 2, 3, 4, 6); the file is corrupt")
        }
        guard depths.contains(depth) else {
            throw fail(.corrupt, "IHDR bit depth \(depth) is not allowed for colour type \(colorType) (allowed: \(depths)); the file is corrupt")
        }
        guard compression == 0, filter == 0, interlace <= 1 else {
            throw fail(.corrupt, "IHDR compression \(compression), filter method \(filter), interlace \(interlace): only 0, 0 and 0/1 exist; the file is corrupt")
        }
        guard width.multipliedReportingOverflow(by: height).partialValue <= maxPixels,
              width <= maxPixels, height <= maxPixels else {
            throw fail(.unsupported, "the image is \(width)×\(height), more than \(maxPixels) pixels; tile or downscale it first")
        }
        return PNGHeader(width: width, height: height, bitDepth: depth, colorType: colorType, interlaced: interlace == 1)
    }

    /// Decodes PNG bytes; `path` names the source in errors.
    public static func decode(_ bytes: UnsafeRawBufferPointer, path: String) throws -> PNGImage {
        func fail(_ kind: ImportError.Kind, _ reason: String) -> ImportError {
            ImportError(path: path, kind: kind, reason: reason)
        }
        let header = try self.header(bytes, path: path)
        var palette: [UInt8]? = nil
        var compressed: [UInt8] = []
        var sawIDAT = false, idatEnded = false, sawIEND = false
        var offset = 8
        while offset < bytes.count {
            guard offset + 12 <= bytes.count else {
                throw fail(.truncated, "truncated PNG: a chunk header at byte \(offset) is cut off; the file is incomplete")
            }
            let length = Int(readBigEndian32(bytes, offset))
            let type = String(decoding: bytes[(offset + 4)..<(offset + 8)], as: UTF8.self)
            guard length <= Int(Int32.max), offset + 12 + length <= bytes.count else {
                throw fail(.truncated, "truncated PNG: chunk \(type) at byte \(offset) announces \(length) bytes but the file ends first; the file is incomplete")
            }
            let data = UnsafeRawBufferPointer(rebasing: bytes[(offset + 8)..<(offset + 8 + length)])
            let stored = readBigEndian32(bytes, offset + 8 + length)
            let computed = crc32Update(0, bytes.baseAddress! + offset + 4, count: 4 + length)
            guard stored == computed else {
                throw fail(.checksumMismatch, "bad CRC in chunk \(type) at byte \(offset) (stored \(hex32(stored)), computed \(hex32(computed))); the file is corrupt")
            }
            if type != "IDAT" && sawIDAT { idatEnded = true }
            switch type {
            case "IHDR":
                guard offset == 8 else { throw fail(.corrupt, "a second IHDR chunk at byte \(offset); the file is corrupt") }
            case "PLTE":
                guard length % 3 == 0, length >= 3, length <= 768 else {
                    throw fail(.corrupt, "PLTE has \(length) bytes; it must be 3 to 768 and a multiple of 3; the file is corrupt")
                }
                guard !sawIDAT else { throw fail(.corrupt, "PLTE after IDAT; the file is corrupt") }
                palette = Array(data)
            case "IDAT":
                guard !idatEnded else {
                    throw fail(.corrupt, "IDAT chunks are not consecutive (another one at byte \(offset)); the file is corrupt")
                }
                sawIDAT = true
                compressed.append(contentsOf: data)
            case "IEND":
                sawIEND = true
            default:
                // Ancillary chunks (first letter lower case) are skipped; tRNS included.
                if let first = type.utf8.first, first & 0x20 == 0 {
                    throw fail(.unsupported, "unknown critical chunk \(type); this decoder cannot read the file — re-save it as a standard PNG")
                }
            }
            offset += 12 + length
            if sawIEND { break }
        }
        guard sawIDAT else {
            throw fail(.truncated, "no IDAT chunk (no image data); the file is truncated or corrupt")
        }
        guard sawIEND else {
            throw fail(.truncated, "truncated PNG: no IEND chunk; the file is incomplete")
        }
        if header.colorType == 3 && palette == nil {
            throw fail(.corrupt, "a palette image (colour type 3) without a PLTE chunk; the file is corrupt")
        }

        let passes = header.interlaced ? adam7 : [Pass(x0: 0, y0: 0, dx: 1, dy: 1)]
        var expected = 0
        for pass in passes {
            let (w, h) = pass.size(header.width, header.height)
            if w > 0 && h > 0 { expected += h * (1 + header.rowBytes(w)) }
        }
        var raw: [UInt8]
        do {
            raw = try Zlib.inflate(compressed, format: .zlib, path: path, expectedCount: expected)
        } catch let error as InflateError {
            throw ImportError(path: path, kind: ImportError(error).kind, reason: "image data (IDAT): " + error.reason)
        }

        var pixels = [UInt8](repeating: 0, count: header.width * header.height * 3)
        let paletteColors = (palette?.count ?? 0) / 3
        try raw.withUnsafeMutableBufferPointer { rawBuffer in
            try pixels.withUnsafeMutableBufferPointer { out in
                var position = 0
                for pass in passes {
                    let (w, h) = pass.size(header.width, header.height)
                    guard w > 0 && h > 0 else { continue }
                    let rowBytes = header.rowBytes(w)
                    var previous: UnsafeMutablePointer<UInt8>? = nil
                    for y in 0..<h {
                        let filterType = rawBuffer[position]
                        let row = rawBuffer.baseAddress! + position + 1
                        guard filterType <= 4 else {
                            throw fail(.corrupt, "row \(y)\(header.interlaced ? " of Adam7 pass \(passes.firstIndex(of: pass)! + 1)" : "") has filter type \(filterType) (only 0–4 exist); the file is corrupt")
                        }
                        unfilter(row, previous: previous, count: rowBytes, stride: header.filterStride, type: filterType)
                        let outY = pass.y0 + y * pass.dy
                        for x in 0..<w {
                            let o = out.baseAddress! + (outY * header.width + pass.x0 + x * pass.dx) * 3
                            try writePixel(row, x: x, header: header, palette: palette, paletteColors: paletteColors, to: o) { index in
                                fail(.corrupt, "pixel (\(pass.x0 + x * pass.dx), \(outY)) uses palette index \(index) but PLTE has \(paletteColors) colours; the file is corrupt")
                            }
                        }
                        previous = row
                        position += 1 + rowBytes
                    }
                }
            }
        }
        return PNGImage(width: header.width, height: header.height, pixels: pixels,
                        colorType: header.colorType, bitDepth: header.bitDepth, interlaced: header.interlaced)
    }

    /// One Adam7 pass: pixels (x0 + i·dx, y0 + j·dy).
    struct Pass: Equatable {
        var x0, y0, dx, dy: Int
        func size(_ width: Int, _ height: Int) -> (Int, Int) {
            (width > x0 ? (width - x0 + dx - 1) / dx : 0, height > y0 ? (height - y0 + dy - 1) / dy : 0)
        }
    }

    static let adam7 = [Pass(x0: 0, y0: 0, dx: 8, dy: 8), Pass(x0: 4, y0: 0, dx: 8, dy: 8),
                        Pass(x0: 0, y0: 4, dx: 4, dy: 8), Pass(x0: 2, y0: 0, dx: 4, dy: 4),
                        Pass(x0: 0, y0: 2, dx: 2, dy: 4), Pass(x0: 1, y0: 0, dx: 2, dy: 2),
                        Pass(x0: 0, y0: 1, dx: 1, dy: 2)]

    /// Reverses a row filter in place (PNG spec §9.2); `previous` is the already
    /// unfiltered row above (nil for a pass's first row, which reads as zeros).
    static func unfilter(_ row: UnsafeMutablePointer<UInt8>, previous: UnsafeMutablePointer<UInt8>?,
                         count: Int, stride bpp: Int, type: UInt8) {
        switch type {
        case 1:  // Sub: + left
            for i in bpp..<max(bpp, count) { row[i] &+= row[i - bpp] }
        case 2:  // Up: + above
            guard let up = previous else { return }
            for i in 0..<count { row[i] &+= up[i] }
        case 3:  // Average: + floor((left + above) / 2)
            for i in 0..<count {
                let left = i >= bpp ? Int(row[i - bpp]) : 0
                let above = previous.map { Int($0[i]) } ?? 0
                row[i] &+= UInt8((left + above) >> 1)
            }
        case 4:  // Paeth: + the neighbour (left, above, upper-left) closest to left + above − upper-left
            for i in 0..<count {
                let a = i >= bpp ? Int(row[i - bpp]) : 0
                let b = previous.map { Int($0[i]) } ?? 0
                let c = (i >= bpp ? previous.map { Int($0[i - bpp]) } : nil) ?? 0
                let p = a + b - c
                let pa = abs(p - a), pb = abs(p - b), pc = abs(p - c)
                row[i] &+= UInt8(pa <= pb && pa <= pc ? a : (pb <= pc ? b : c))
            }
        default:  // None
            break
        }
    }

    /// Writes pixel `x` of an unfiltered row as RGB.
    @inline(__always)
    static func writePixel(_ row: UnsafeMutablePointer<UInt8>, x: Int, header: PNGHeader, palette: [UInt8]?,
                           paletteColors: Int, to o: UnsafeMutablePointer<UInt8>,
                           badIndex: (Int) -> ImportError) throws {
        let depth = header.bitDepth
        // The high byte of sample `s` of pixel x (8- and 16-bit depths).
        @inline(__always) func sample(_ s: Int) -> UInt8 {
            row[(x * header.channels + s) * (depth / 8)]
        }
        // The value of a sub-byte (1, 2, 4 bit) pixel.
        @inline(__always) func packed() -> Int {
            let bit = x * depth
            return Int(row[bit >> 3] >> UInt8(8 - depth - (bit & 7))) & ((1 << depth) - 1)
        }
        switch header.colorType {
        case 0:
            let v = depth >= 8 ? sample(0) : UInt8(packed() * 255 / ((1 << depth) - 1))
            o[0] = v; o[1] = v; o[2] = v
        case 2, 6:
            o[0] = sample(0); o[1] = sample(1); o[2] = sample(2)
        case 4:
            let v = sample(0)
            o[0] = v; o[1] = v; o[2] = v
        default:  // 3: palette
            let index = depth == 8 ? Int(row[x]) : packed()
            guard index < paletteColors, let palette else { throw badIndex(index) }
            o[0] = palette[3 * index]; o[1] = palette[3 * index + 1]; o[2] = palette[3 * index + 2]
        }
    }
}

@inline(__always)
func readBigEndian32(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> UInt32 {
    UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
}
