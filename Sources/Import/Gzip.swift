import CZlib
import Foundation

/// An error reading a compressed or configuration file of a model folder.
public struct ImportFileError: Error, CustomStringConvertible {
    public var path: String
    public var reason: String

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    public var description: String { "'\(path)': \(reason)" }
}

/// Reads a whole file.
func readFileBytes(_ path: String) throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw ImportFileError(path: path, reason: "cannot read the file (missing or unreadable)")
    }
    return [UInt8](data)
}

/// Decompresses a gzip stream (RFC 1952; concatenated members are decoded one after the other)
/// with zlib's `inflate`, `windowBits = 16 + MAX_WBITS` selecting the gzip wrapper.
public func gunzip(_ compressed: [UInt8], path: String = "<memory>") throws -> [UInt8] {
    var output: [UInt8] = []
    output.reserveCapacity(compressed.count * 4)
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    var stream = z_stream()
    // `inflateInit2` is a C macro; this is its expansion.
    var status = inflateInit2_(&stream, 16 + MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
    guard status == Z_OK else { throw ImportFileError(path: path, reason: "zlib inflateInit2 failed (\(status))") }
    defer { inflateEnd(&stream) }
    try compressed.withUnsafeBufferPointer { input in
        var consumed = 0
        while consumed < input.count {
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress! + consumed)
            stream.avail_in = UInt32(input.count - consumed)
            repeat {
                let produced: Int = chunk.withUnsafeMutableBufferPointer { out in
                    stream.next_out = out.baseAddress
                    stream.avail_out = UInt32(out.count)
                    status = inflate(&stream, Z_NO_FLUSH)
                    return out.count - Int(stream.avail_out)
                }
                guard status == Z_OK || status == Z_STREAM_END else {
                    throw ImportFileError(path: path, reason: "not a valid gzip stream (zlib status \(status))")
                }
                output.append(contentsOf: chunk[0..<produced])
            } while status != Z_STREAM_END && (stream.avail_in > 0 || stream.avail_out == 0)
            consumed = input.count - Int(stream.avail_in)
            if status == Z_STREAM_END {
                // Another gzip member may follow (as `gzip.open` accepts); skip zero padding.
                while consumed < input.count && input[consumed] == 0 { consumed += 1 }
                if consumed < input.count { inflateReset(&stream) }
            } else if stream.avail_in == 0 {
                throw ImportFileError(path: path, reason: "gzip stream is truncated")
            }
        }
    }
    if status != Z_STREAM_END { throw ImportFileError(path: path, reason: "gzip stream is truncated") }
    return output
}

/// Reads and decompresses a `.gz` file.
public func gunzipFile(_ path: String) throws -> [UInt8] {
    try gunzip(try readFileBytes(path), path: path)
}
