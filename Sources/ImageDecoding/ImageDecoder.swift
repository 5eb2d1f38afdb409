// The one entry point for reading image files: PNG (libpng), JPEG (libjpeg-turbo) and
// TIFF (libtiff), recognised by their first bytes, decoded to 8-bit RGB exactly as
// Pillow's `Image.open(path).convert("RGB")` (docs/importing.md, "Images").
import Formats

/// A decoded image: `pixels` is height × width × 3 bytes, row-major, RGB.
public struct RGBImage: Equatable, Sendable {
    public var width: Int
    public var height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3, "RGBImage: \(pixels.count) bytes for \(width)×\(height) RGB")
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}

/// The image file formats clipit reads.
public enum ImageFormat: String, CaseIterable, Sendable {
    case png = "PNG"
    case jpeg = "JPEG"
    case tiff = "TIFF"

    /// File name extensions (lower case, without the dot) of each format.
    public var extensions: [String] {
        switch self {
        case .png: return ["png"]
        case .jpeg: return ["jpg", "jpeg"]
        case .tiff: return ["tif", "tiff"]
        }
    }

    /// The format whose extensions include `ext` (any case), nil for any other extension.
    public init?(extension ext: String) {
        guard let format = Self.allCases.first(where: { $0.extensions.contains(ext.lowercased()) }) else { return nil }
        self = format
    }

    /// The format whose signature `bytes` start with: PNG's 8-byte signature, JPEG's SOI
    /// marker `FF D8 FF`, TIFF's `II*\0` / `MM\0*` (BigTIFF's `II+\0` / `MM\0+` too).
    public init?(signature bytes: UnsafeRawBufferPointer) {
        func starts(with prefix: [UInt8]) -> Bool {
            bytes.count >= prefix.count && zip(bytes, prefix).allSatisfy { $0 == $1 }
        }
        if starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) {
            self = .png
        } else if starts(with: [0xFF, 0xD8, 0xFF]) {
            self = .jpeg
        } else if starts(with: [0x49, 0x49, 0x2A, 0x00]) || starts(with: [0x4D, 0x4D, 0x00, 0x2A])
                    || starts(with: [0x49, 0x49, 0x2B, 0x00]) || starts(with: [0x4D, 0x4D, 0x00, 0x2B]) {
            self = .tiff
        } else {
            return nil
        }
    }
}

public enum ImageDecoder {
    /// Largest image accepted, in pixels (a guard against corrupt or hostile sizes).
    public static let maxPixels = 1 << 28

    /// Every file name extension `decode` is meant for (lower case, without the dot).
    public static var extensions: [String] { ImageFormat.allCases.flatMap(\.extensions) }

    /// Decodes the image file at `path` to RGB, by its content (not its name).
    ///
    /// - Throws: `ImportError` naming `path`: `io` (cannot read), `badSignature` (not a PNG,
    ///   JPEG or TIFF), `truncated`, `checksumMismatch` (a PNG chunk CRC), `corrupt` (the
    ///   library's reason), `unsupported` (CMYK, floating-point or signed samples, images
    ///   over `maxPixels`, …).
    public static func decode(path: String) throws -> RGBImage {
        let file = try openForImport(path)
        return try decode(file.bytes, path: path)
    }

    /// Decodes image bytes; `path` names the source in errors.
    public static func decode(_ bytes: UnsafeRawBufferPointer, path: String) throws -> RGBImage {
        guard let format = ImageFormat(signature: bytes) else {
            let head = bytes.prefix(4).map { String($0, radix: 16).leftPadded(to: 2) }.joined(separator: " ")
            let claimed = ImageFormat(extension: (path.split(separator: ".").last.map(String.init)) ?? "")
            let reason = bytes.isEmpty
                ? "the file is empty"
                : "not a PNG, JPEG or TIFF file (it starts with bytes \(head))" + (claimed.map { ", although its name says \($0.rawValue)" } ?? "")
            throw ImportError(path: path, kind: bytes.isEmpty ? .truncated : .badSignature,
                              reason: reason + "; re-export the image as PNG, JPEG or TIFF")
        }
        switch format {
        case .png: return try PNGDecoding.decode(bytes, path: path)
        case .jpeg: return try JPEGDecoding.decode(bytes, path: path)
        case .tiff: return try TIFFDecoding.decode(bytes, path: path)
        }
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

/// The C string in a fixed-size `char` array imported as a tuple.
func string<T>(fromCharArray array: T) -> String {
    withUnsafeBytes(of: array) { raw in
        String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
    }
}
