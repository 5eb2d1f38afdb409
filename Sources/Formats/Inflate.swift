// zlib inflate/deflate and CRC-32: PNG image data (zlib streams), npz members (raw
// deflate), gzip files (the tokenizer's BPE vocabulary). Nothing above this file sees zlib types.
import CZlib

/// Compressed data could not be decoded: it is corrupt or truncated, fails its checksum,
/// or zlib itself failed. `description` starts with the file's path (and the archive
/// member, if any) and ends with a hint. Modules map it into their own error type at their
/// API (Datasets: `ImportError`; Import: `ImportFileError`), keeping `path`, `member`,
/// `kind` and `reason`.
public struct InflateError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: String, Sendable {
        case io                // zlib could not start or ran out of memory
        case truncated         // the stream ends early, or decompresses to fewer bytes than expected
        case checksumMismatch  // the stored Adler-32 / CRC32 / length differs from the computed one
        case corrupt           // undecodable data, trailing bytes, or more output than expected
    }

    public let path: String
    /// Archive member (an npz entry), nil otherwise.
    public let member: String?
    public let kind: Kind
    /// The problem, without the path.
    public let reason: String

    public init(path: String, member: String? = nil, kind: Kind, reason: String) {
        self.path = path
        self.member = member
        self.kind = kind
        self.reason = reason
    }

    public var description: String {
        guard let member else { return "\(path): \(reason)" }
        return "\(path) (member '\(member)'): \(reason)"
    }
}

/// Which framing a deflate stream has.
public enum CompressedFormat: Sendable {
    /// RFC 1950: 2-byte header, deflate data, Adler-32 (PNG `IDAT`).
    case zlib
    /// RFC 1952: gzip header, deflate data, CRC32 and size; concatenated members are read
    /// one after another, as `gunzip` does.
    case gzip
    /// RFC 1951 deflate data without framing (zip / npz members, zlib windowBits −15).
    case raw

    var windowBits: Int32 {
        switch self {
        case .zlib: return 15
        case .gzip: return 16 + 15
        case .raw: return -15
        }
    }

    var name: String {
        switch self {
        case .zlib: return "zlib"
        case .gzip: return "gzip"
        case .raw: return "deflate"
        }
    }
}

/// A streaming inflater: feed compressed bytes in any pieces, receive decompressed bytes
/// in pieces of at most `outputChunk` bytes through a closure. gzip input may hold several
/// members one after another, with zero padding between them, as `gzip -d` accepts.
///
///     let inflater = try Inflater(format: .gzip, path: path)
///     for piece in pieces { try inflater.feed(piece) { out in … } }
///     try inflater.finish()          // throws `.truncated` if the stream did not end
///
/// Errors are `InflateError`s naming `path` (and `member`): corrupt data (`.corrupt`), a
/// failed Adler-32/CRC32 check (`.checksumMismatch`), a stream that ends early
/// (`.truncated`), or bytes after the end of a zlib/raw stream (`.corrupt`).
public final class Inflater {
    public let format: CompressedFormat
    public let path: String
    public let member: String?
    /// Whether the final block and trailer have been read.
    public private(set) var isFinished = false
    /// Compressed bytes consumed and decompressed bytes produced so far.
    public private(set) var bytesIn = 0
    public private(set) var bytesOut = 0

    private var stream: UnsafeMutablePointer<z_stream>
    private var output: UnsafeMutablePointer<UInt8>
    private let outputChunk: Int
    private var open = false

    public init(format: CompressedFormat, path: String, member: String? = nil, outputChunk: Int = 1 << 18) throws {
        precondition(outputChunk > 0, "Inflater: outputChunk must be positive")
        self.format = format
        self.path = path
        self.member = member
        self.outputChunk = outputChunk
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        output = .allocate(capacity: outputChunk)
        let status = inflateInit2_(stream, format.windowBits, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard status == Z_OK else {
            stream.deallocate()
            output.deallocate()
            throw InflateError(path: path, member: member, kind: .io,
                               reason: "zlib inflateInit2 failed (\(status)); the zlib library is unusable")
        }
        open = true
    }

    deinit {
        if open { inflateEnd(stream) }
        stream.deallocate()
        output.deallocate()
    }

    private func fail(_ kind: InflateError.Kind, _ reason: String) -> InflateError {
        InflateError(path: path, member: member, kind: kind, reason: reason)
    }

    /// Decompresses `input`, passing each produced piece to `sink`.
    public func feed(_ input: UnsafeRawBufferPointer, sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        var offset = 0
        while offset < input.count {
            if isFinished {
                guard format == .gzip else {
                    throw fail(.corrupt, "\(input.count - offset) bytes follow the end of the \(format.name) stream; the file is corrupt or has trailing data")
                }
                // Zero padding may follow a gzip member; any other byte starts the next member.
                while offset < input.count && input[offset] == 0 { offset += 1; bytesIn += 1 }
                guard offset < input.count else { return }
                inflateReset(stream)
                isFinished = false
            }
            let piece = min(input.count - offset, Int(UInt32.max >> 1))
            stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress!.advanced(by: offset)
                .assumingMemoryBound(to: Bytef.self))
            stream.pointee.avail_in = uInt(piece)
            try inflatePiece(sink: sink)
            offset += piece - Int(stream.pointee.avail_in)   // unconsumed bytes follow a stream's end
        }
    }

    /// Runs `inflate` until the current input is consumed and all output drained, or the
    /// stream ends (`isFinished`; `avail_in` then counts the bytes after it).
    private func inflatePiece(sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        repeat {
            stream.pointee.next_out = output
            stream.pointee.avail_out = uInt(outputChunk)
            let before = stream.pointee.avail_in
            let status = CZlib.inflate(stream, Z_NO_FLUSH)
            let produced = outputChunk - Int(stream.pointee.avail_out)
            bytesIn += Int(before - stream.pointee.avail_in)
            bytesOut += produced
            if produced > 0 { try sink(UnsafeRawBufferPointer(start: output, count: produced)) }
            switch status {
            case Z_OK:
                continue
            case Z_BUF_ERROR:
                // No progress possible: all input consumed (more is needed).
                if stream.pointee.avail_in == 0 { return }
                throw fail(.corrupt, "zlib could not make progress decoding the \(format.name) stream")
            case Z_STREAM_END:
                isFinished = true
                return
            case Z_DATA_ERROR:
                let message = stream.pointee.msg.map { String(cString: $0) } ?? "invalid data"
                let kind: InflateError.Kind = message == "incorrect data check" || message == "incorrect length check" ? .checksumMismatch : .corrupt
                throw fail(kind, "corrupt \(format.name) data after \(bytesIn) compressed bytes (zlib: \(message)); the file is damaged — download or copy it again")
            case Z_MEM_ERROR:
                throw fail(.io, "zlib ran out of memory")
            default:
                throw fail(.corrupt, "zlib inflate returned \(status) decoding the \(format.name) stream")
            }
        } while stream.pointee.avail_in > 0 || stream.pointee.avail_out == 0
    }

    /// Checks that the stream ended (final block and trailer read).
    public func finish() throws {
        guard isFinished else {
            throw fail(.truncated, "the \(format.name) stream ends early (after \(bytesIn) compressed, \(bytesOut) decompressed bytes); the file is truncated — download or copy it again")
        }
    }
}

/// One-shot zlib helpers.
public enum Zlib {
    /// Decompresses a whole stream. With `expectedCount`, a stream that produces a
    /// different number of bytes is an error (`.truncated` if fewer, `.corrupt` if more);
    /// `limit` caps the output otherwise.
    public static func inflate(_ input: UnsafeRawBufferPointer, format: CompressedFormat, path: String,
                               member: String? = nil, expectedCount: Int? = nil,
                               limit: Int = 1 << 34) throws -> [UInt8] {
        let inflater = try Inflater(format: format, path: path, member: member)
        var out: [UInt8] = []
        if let expectedCount { out.reserveCapacity(expectedCount) }
        let cap = expectedCount ?? limit
        try inflater.feed(input) { piece in
            guard out.count + piece.count <= cap else {
                throw InflateError(path: path, member: member, kind: .corrupt,
                                   reason: expectedCount != nil
                                     ? "the \(format.name) data decompresses to more than the expected \(cap) bytes; the file is corrupt"
                                     : "the \(format.name) data decompresses to more than \(cap) bytes; refusing to continue")
            }
            out.append(contentsOf: piece)
        }
        try inflater.finish()
        if let expectedCount, out.count != expectedCount {
            throw InflateError(path: path, member: member, kind: .truncated,
                               reason: "the \(format.name) data decompresses to \(out.count) bytes, expected \(expectedCount); the file is truncated or corrupt")
        }
        return out
    }

    public static func inflate(_ input: [UInt8], format: CompressedFormat, path: String,
                               member: String? = nil, expectedCount: Int? = nil) throws -> [UInt8] {
        try input.withUnsafeBytes { try inflate($0, format: format, path: path, member: member, expectedCount: expectedCount) }
    }

    /// Compresses `input` (level 0–9) as a zlib, gzip or raw deflate stream.
    public static func deflate(_ input: [UInt8], format: CompressedFormat, level: Int32 = 6) -> [UInt8] {
        var stream = z_stream()
        let status = deflateInit2_(&stream, level, Z_DEFLATED, format.windowBits, 8, Z_DEFAULT_STRATEGY,
                                   zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        precondition(status == Z_OK, "Zlib.deflate: deflateInit2 failed (\(status))")
        defer { deflateEnd(&stream) }
        var out = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(input.count))) + 64)
        let written: Int = input.withUnsafeBufferPointer { inp in
            out.withUnsafeMutableBufferPointer { outp in
                stream.next_in = UnsafeMutablePointer(mutating: inp.baseAddress)
                stream.avail_in = uInt(inp.count)
                stream.next_out = outp.baseAddress
                stream.avail_out = uInt(outp.count)
                let result = CZlib.deflate(&stream, Z_FINISH)
                precondition(result == Z_STREAM_END, "Zlib.deflate: deflate returned \(result)")
                return outp.count - Int(stream.avail_out)
            }
        }
        out.removeLast(out.count - written)
        return out
    }

    /// CRC-32 (the PNG / zip / gzip polynomial) of `bytes`, continuing from `initial`.
    public static func crc32(_ bytes: UnsafeRawBufferPointer, initial: UInt32 = 0) -> UInt32 {
        guard var p = bytes.baseAddress?.assumingMemoryBound(to: Bytef.self) else { return initial }
        var crc = uLong(initial)
        var remaining = bytes.count
        while remaining > 0 {
            let chunk = min(remaining, 1 << 30)   // zlib takes a 32-bit length
            crc = CZlib.crc32(crc, p, uInt(chunk))
            p += chunk
            remaining -= chunk
        }
        return UInt32(truncatingIfNeeded: crc)
    }

    public static func crc32(_ bytes: [UInt8], initial: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { crc32($0, initial: initial) }
    }
}
