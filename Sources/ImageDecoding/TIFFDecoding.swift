// TIFF through libtiff (Sources/CTIFF): the first image of the file, in strips or tiles,
// uncompressed or with any codec libtiff has (LZW, deflate, PackBits, JPEG, …), with
// libtiff's messages captured per file. Photometric interpretations and sample layouts
// are converted to RGB by Pillow's rules for the mode Pillow opens them in:
//   MinIsBlack 1/8/16 bit, 1 sample (1, L, I;16) or 8 bit + alpha (LA); MinIsWhite 1/8 bit
//   (inverted); RGB 8/16 bit with 3 or 4 samples; palette 8 bit (the colour map's high
//   bytes); YCbCr when JPEG-compressed (decoded to RGB by the codec, as Pillow asks it).
// Refused as `unsupported`: CMYK and other photometrics, floating-point or signed samples,
// other bit depths, separate sample planes, 16-bit grey + alpha (Pillow cannot open it).
import CTIFF
import Formats

enum TIFFDecoding {
    /// The most libtiff may allocate at once (strip and tile buffers), a guard against corrupt sizes.
    static let maxAllocation = 1 << 30

    static func decode(_ bytes: UnsafeRawBufferPointer, path: String) throws -> RGBImage {
        var source = clipit_tiff_source()
        source.data = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)
        source.size = UInt64(bytes.count)
        return try withUnsafeMutablePointer(to: &source) { source in
            func libraryError(_ what: String) -> ImportError {
                let message = string(fromCharArray: source.pointee.error)
                let truncated = message.contains("Read error") || message.contains("Cannot read")
                return ImportError(path: path, kind: truncated ? .truncated : .corrupt,
                                   reason: "\(what) (libtiff: \(message.isEmpty ? "no reason given" : message)); the file is incomplete or corrupt — re-export it")
            }
            guard let tiff = clipit_tiff_open(source, path, tmsize_t(maxAllocation)) else {
                throw libraryError("cannot open the TIFF")
            }
            defer { TIFFClose(tiff) }
            return try read(tiff, path: path, libraryError: libraryError)
        }
    }

    private static func read(_ tiff: OpaquePointer, path: String, libraryError: (String) -> ImportError) throws -> RGBImage {
        func unsupported(_ what: String) -> ImportError {
            ImportError(path: path, kind: .unsupported, reason: "\(what) cannot be read as RGB here; convert the image to 8-bit RGB first")
        }
        func u16(_ tag: Int32, default value: UInt16? = nil) throws -> UInt16 {
            var v: UInt16 = 0
            let found = value == nil ? clipit_tiff_get_u16(tiff, UInt32(tag), &v) : clipit_tiff_get_u16_defaulted(tiff, UInt32(tag), &v)
            if found == 1 { return v }
            if let value { return value }
            throw ImportError(path: path, kind: .corrupt, reason: "the TIFF has no tag \(tag); the file is corrupt")
        }
        func u32(_ tag: Int32) throws -> UInt32 {
            var v: UInt32 = 0
            guard clipit_tiff_get_u32(tiff, UInt32(tag), &v) == 1 else {
                throw ImportError(path: path, kind: .corrupt, reason: "the TIFF has no tag \(tag); the file is corrupt")
            }
            return v
        }
        let width = Int(try u32(TIFFTAG_IMAGEWIDTH)), height = Int(try u32(TIFFTAG_IMAGELENGTH))
        guard width > 0, height > 0 else {
            throw ImportError(path: path, kind: .corrupt, reason: "the TIFF is \(width)×\(height) pixels; the file is corrupt")
        }
        guard width.multipliedReportingOverflow(by: height).partialValue <= ImageDecoder.maxPixels,
              width <= ImageDecoder.maxPixels, height <= ImageDecoder.maxPixels else {
            throw ImportError(path: path, kind: .unsupported,
                              reason: "the image is \(width)×\(height) pixels, more than \(ImageDecoder.maxPixels); tile or downscale it first")
        }
        let bits = Int(try u16(TIFFTAG_BITSPERSAMPLE, default: 1))
        let samples = Int(try u16(TIFFTAG_SAMPLESPERPIXEL, default: 1))
        let format = try u16(TIFFTAG_SAMPLEFORMAT, default: 1)
        let planar = try u16(TIFFTAG_PLANARCONFIG, default: 1)
        let compression = try u16(TIFFTAG_COMPRESSION, default: 1)
        var photometric = try u16(TIFFTAG_PHOTOMETRIC)

        switch Int32(format) {
        case SAMPLEFORMAT_UINT: break
        case SAMPLEFORMAT_IEEEFP: throw unsupported("a TIFF of \(bits)-bit floating-point samples")
        case SAMPLEFORMAT_INT: throw unsupported("a TIFF of \(bits)-bit signed samples")
        default: throw unsupported("a TIFF of sample format \(format)")
        }
        if samples > 1 && planar != 1 { throw unsupported("a TIFF with separate sample planes (PlanarConfiguration 2)") }
        if Int32(photometric) == PHOTOMETRIC_YCBCR {
            guard Int32(compression) == COMPRESSION_JPEG, bits == 8, samples == 3 else {
                throw unsupported("a YCbCr TIFF that is not JPEG-compressed")
            }
            guard clipit_tiff_set_jpeg_rgb(tiff) == 1 else { throw libraryError("cannot decode the JPEG-in-TIFF as RGB") }
            photometric = UInt16(PHOTOMETRIC_RGB)
        }
        switch (Int32(photometric), bits, samples) {
        case (PHOTOMETRIC_MINISBLACK, 1, 1), (PHOTOMETRIC_MINISBLACK, 8, 1...2), (PHOTOMETRIC_MINISBLACK, 16, 1),
             (PHOTOMETRIC_MINISWHITE, 1, 1), (PHOTOMETRIC_MINISWHITE, 8, 1),
             (PHOTOMETRIC_RGB, 8, 3...4), (PHOTOMETRIC_RGB, 16, 3...4),
             (PHOTOMETRIC_PALETTE, 8, 1):
            break
        case (PHOTOMETRIC_SEPARATED, _, _):
            throw unsupported("a CMYK TIFF (PhotometricInterpretation 5, \(samples) samples)")
        case (PHOTOMETRIC_MINISBLACK, _, _), (PHOTOMETRIC_MINISWHITE, _, _), (PHOTOMETRIC_RGB, _, _), (PHOTOMETRIC_PALETTE, _, _):
            throw unsupported("a TIFF of \(samples) \(bits)-bit samples per pixel with PhotometricInterpretation \(photometric)")
        default:
            throw unsupported("a TIFF with PhotometricInterpretation \(photometric)")
        }

        // The image's packed rows, as libtiff decodes them.
        let rowBytes = Int(TIFFScanlineSize64(tiff))
        guard rowBytes == (width * samples * bits + 7) / 8 else {
            throw ImportError(path: path, kind: .corrupt, reason: "libtiff gives \(rowBytes)-byte rows for \(width) pixels of \(samples)×\(bits) bits; the file is corrupt")
        }
        // Filled by libtiff before it is read (any failure throws), so left uninitialised:
        // a corrupt header cannot make us zero gigabytes.
        let raw = try [UInt8](unsafeUninitializedCapacity: rowBytes * height) { buffer, initialized in
            let out = UnsafeMutableRawBufferPointer(buffer)
            if TIFFIsTiled(tiff) != 0 {
                let tileWidth = Int(try u32(TIFFTAG_TILEWIDTH)), tileHeight = Int(try u32(TIFFTAG_TILELENGTH))
                let tileBytes = Int(TIFFTileSize64(tiff)), tileRowBytes = Int(TIFFTileRowSize64(tiff))
                guard tileWidth > 0, tileHeight > 0, tileBytes > 0, tileBytes <= maxAllocation,
                      tileRowBytes * tileHeight <= tileBytes else {
                    throw ImportError(path: path, kind: .corrupt, reason: "the TIFF's \(tileWidth)×\(tileHeight) tiles of \(tileBytes) bytes are inconsistent; the file is corrupt")
                }
                let tileBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: tileBytes, alignment: 16)
                defer { tileBuffer.deallocate() }
                do {
                    for y0 in stride(from: 0, to: height, by: tileHeight) {
                        for x0 in stride(from: 0, to: width, by: tileWidth) {
                            let index = TIFFComputeTile(tiff, UInt32(x0), UInt32(y0), 0, 0)
                            let read = TIFFReadEncodedTile(tiff, index, tileBuffer.baseAddress, tmsize_t(tileBytes))
                            guard read >= 0 else { throw libraryError("cannot decode tile \(index)") }
                            guard read == tileBytes else {
                                throw ImportError(path: path, kind: .truncated, reason: "tile \(index) holds \(read) of its \(tileBytes) bytes; the file is incomplete or corrupt — re-export it")
                            }
                            let first = x0 * samples * bits / 8
                            let count = (min(width, x0 + tileWidth) * samples * bits + 7) / 8 - first
                            for row in 0..<min(tileHeight, height - y0) {
                                (out.baseAddress! + (y0 + row) * rowBytes + first)
                                    .copyMemory(from: tileBuffer.baseAddress! + row * tileRowBytes, byteCount: count)
                            }
                        }
                    }
                }
            } else {
                var rowsPerStrip = Int(height)
                var value: UInt32 = 0
                if clipit_tiff_get_u32_defaulted(tiff, UInt32(TIFFTAG_ROWSPERSTRIP), &value) == 1, value > 0 {
                    rowsPerStrip = min(Int(value), height)
                }
                let strips = (height + rowsPerStrip - 1) / rowsPerStrip
                guard Int(TIFFNumberOfStrips(tiff)) >= strips else {
                    throw ImportError(path: path, kind: .corrupt, reason: "the TIFF has \(TIFFNumberOfStrips(tiff)) strips, \(height) rows need \(strips); the file is corrupt")
                }
                for strip in 0..<strips {
                    let y0 = strip * rowsPerStrip, count = min(rowsPerStrip, height - y0) * rowBytes
                    let read = TIFFReadEncodedStrip(tiff, UInt32(strip), out.baseAddress! + y0 * rowBytes, tmsize_t(count))
                    guard read >= 0 else { throw libraryError("cannot decode strip \(strip)") }
                    guard read == count else {
                        throw ImportError(path: path, kind: .truncated, reason: "strip \(strip) holds \(read) of its \(count) bytes; the file is incomplete or corrupt — re-export it")
                    }
                }
            }
            initialized = rowBytes * height
        }

        return try raw.withUnsafeBytes { raw -> RGBImage in
            let base = raw.baseAddress!
            switch Int32(photometric) {
            case PHOTOMETRIC_PALETTE:
                var red: UnsafeMutablePointer<UInt16>? = nil, green: UnsafeMutablePointer<UInt16>? = nil, blue: UnsafeMutablePointer<UInt16>? = nil
                guard clipit_tiff_get_colormap(tiff, &red, &green, &blue) == 1, let red, let green, let blue else {
                    throw ImportError(path: path, kind: .corrupt, reason: "a palette TIFF without a ColorMap; the file is corrupt")
                }
                // Pillow keeps each colour-map entry's high byte.
                var pixels = [UInt8](repeating: 0, count: width * height * 3)
                for i in 0..<(width * height) {
                    let index = Int(raw[i])
                    pixels[3 * i] = UInt8(red[index] >> 8)
                    pixels[3 * i + 1] = UInt8(green[index] >> 8)
                    pixels[3 * i + 2] = UInt8(blue[index] >> 8)
                }
                return RGBImage(width: width, height: height, pixels: pixels)
            case PHOTOMETRIC_MINISBLACK where bits == 1, PHOTOMETRIC_MINISWHITE:
                // Bilevel (Pillow's mode 1: 0 or 255) and MinIsWhite (inverted) as 8-bit grey.
                let white: UInt8 = Int32(photometric) == PHOTOMETRIC_MINISWHITE ? 0 : 255
                var grey = [UInt8](repeating: 0, count: width * height)
                for y in 0..<height {
                    for x in 0..<width {
                        if bits == 1 {
                            let set = raw[y * rowBytes + x / 8] & (0x80 >> UInt8(x % 8)) != 0
                            grey[y * width + x] = set ? white : 255 - white
                        } else {
                            grey[y * width + x] = 255 - raw[y * rowBytes + x]
                        }
                    }
                }
                return grey.withUnsafeBytes {
                    RGBImage(width: width, height: height,
                             pixels: PillowRGB.convert($0.baseAddress!, width: width, height: height, rowBytes: width,
                                                       layout: SampleLayout(channels: 1, bitDepth: 8, colour: false)))
                }
            default:
                let layout = SampleLayout(channels: samples, bitDepth: bits, colour: Int32(photometric) == PHOTOMETRIC_RGB)
                return RGBImage(width: width, height: height,
                                pixels: PillowRGB.convert(base, width: width, height: height, rowBytes: rowBytes, layout: layout))
            }
        }
    }
}
