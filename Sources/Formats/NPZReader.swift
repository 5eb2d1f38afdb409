// NumPy .npz archives (a zip of .npy files, as `numpy.savez` / `savez_compressed` write
// them), read straight from a memory map: stored members are sliced, deflated members
// are inflated as a stream, so a multi-gigabyte MedMNIST file never has to fit in memory.
//
// Zip: the central directory is found from the end-of-central-directory record (with
// its ZIP64 variants, which numpy uses: `force_zip64=True` puts 0xFFFFFFFF sizes and a
// ZIP64 extra field in every local header). Supported member methods: 0 (stored) and
// 8 (deflate); encrypted members are rejected. Each member's CRC32 and size are checked.
//
// .npy (format versions 1, 2 and 3): magic "\x93NUMPY", version, header length (2 bytes
// for v1, 4 for v2/v3), then a Python dict literal with 'descr', 'fortran_order' and
// 'shape'. Little-endian and byte types are read: |u1 |i1 |b1 <u2 <i2 <u4 <i4 <u8 <i8
// <f2 <f4 <f8 (and '=' native, which is little-endian on supported hosts).


/// One member of a zip archive.
public struct ZipMember: Sendable {
    public var name: String
    /// 0 stored, 8 deflate.
    public var method: Int
    public var compressedSize: Int
    public var size: Int
    public var crc32: UInt32
    /// Offset of the member's local header.
    public var localHeaderOffset: Int
    public var encrypted: Bool
}

/// The header of a .npy array.
public struct NPYHeader: Equatable, Sendable {
    /// The dtype string as stored, e.g. "|u1", "<f4".
    public var descr: String
    /// 'u' unsigned, 'i' signed, 'f' float, 'b' boolean.
    public var kind: Character
    /// Bytes per element.
    public var itemSize: Int
    public var fortranOrder: Bool
    public var shape: [Int]
    /// Offset of the data after the magic, version, length and header text.
    public var dataOffset: Int

    public var count: Int { shape.reduce(1, *) }
    public var byteCount: Int { count * itemSize }
}

/// A whole .npy array in memory.
public struct NPYArray: Sendable {
    public var header: NPYHeader
    /// Raw little-endian element bytes, C order.
    public var bytes: [UInt8]

    /// The elements as integers (integer and boolean dtypes).
    public func integers(path: String, member: String? = nil) throws -> [Int] {
        guard header.kind != "f" else {
            throw ImportError(path: path, member: member, kind: .invalidInput,
                              reason: "expected an integer array, found dtype \(header.descr); store labels as integers")
        }
        var out = [Int](repeating: 0, count: header.count)
        bytes.withUnsafeBytes { raw in
            for i in 0..<header.count {
                let at = i * header.itemSize
                switch (header.kind, header.itemSize) {
                case ("i", 1): out[i] = Int(raw.load(fromByteOffset: at, as: Int8.self))
                case ("i", 2): out[i] = Int(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: Int16.self)))
                case ("i", 4): out[i] = Int(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: Int32.self)))
                case ("i", 8): out[i] = Int(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: Int64.self)))
                case (_, 1): out[i] = Int(raw[at])
                case (_, 2): out[i] = Int(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt16.self)))
                case (_, 4): out[i] = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
                default: out[i] = Int(truncatingIfNeeded: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt64.self)))
                }
            }
        }
        return out
    }

    /// The elements as floats (float dtypes; f2 is IEEE half, f8 rounded).
    public func floats(path: String, member: String? = nil) throws -> [Float] {
        guard header.kind == "f" else {
            throw ImportError(path: path, member: member, kind: .invalidInput,
                              reason: "expected a float array, found dtype \(header.descr)")
        }
        var out = [Float](repeating: 0, count: header.count)
        bytes.withUnsafeBytes { raw in
            for i in 0..<header.count {
                let at = i * header.itemSize
                switch header.itemSize {
                case 2: out[i] = Float(Float16(bitPattern: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt16.self))))
                case 4: out[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
                default: out[i] = Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt64.self))))
                }
            }
        }
        return out
    }
}

/// A .npz archive, memory-mapped and indexed on open.
public final class NPZArchive {
    public let path: String
    /// Members in central-directory order.
    public let members: [ZipMember]
    private let file: MappedFile
    /// Largest piece handed to a stream's sink (tests shrink it to split images across pieces).
    public var pieceSize = 1 << 20

    /// Names of the arrays (members ending in ".npy", without the extension).
    public var arrayNames: [String] {
        members.filter { $0.name.hasSuffix(".npy") }.map { String($0.name.dropLast(4)) }
    }

    public func contains(_ array: String) -> Bool { members.contains { $0.name == array + ".npy" } }

    public init(path: String) throws {
        self.path = path
        file = try openForImport(path)
        members = try Self.readCentralDirectory(file.bytes, path: path)
    }

    private func fail(_ kind: ImportError.Kind, _ member: String?, _ reason: String) -> ImportError {
        ImportError(path: path, member: member, kind: kind, reason: reason)
    }

    // MARK: Zip structure

    private static func readCentralDirectory(_ bytes: UnsafeRawBufferPointer, path: String) throws -> [ZipMember] {
        func fail(_ kind: ImportError.Kind, _ reason: String) -> ImportError {
            ImportError(path: path, kind: kind, reason: reason)
        }
        func u16(_ at: Int) -> Int { Int(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt16.self))) }
        func u32(_ at: Int) -> Int { Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self))) }
        func u64(_ at: Int) -> Int { Int(truncatingIfNeeded: UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self))) }
        let size = bytes.count
        guard size >= 4, u32(0) == 0x0403_4B50 || u32(0) == 0x0605_4B50 else {
            throw fail(.badSignature, "not a zip/npz archive (no zip signature at the start); expected a file written by numpy.savez or savez_compressed")
        }
        // End of central directory: 22 bytes + a comment of up to 65535 bytes.
        guard size >= 22 else { throw fail(.truncated, "truncated archive: \(size) bytes; the file is incomplete") }
        var eocd = -1
        var at = size - 22
        while at >= max(0, size - 22 - 65535) {
            if u32(at) == 0x0605_4B50 { eocd = at; break }
            at -= 1
        }
        guard eocd >= 0 else {
            throw fail(.truncated, "no end-of-central-directory record; the archive is truncated (the download or copy is incomplete)")
        }
        var count = u16(eocd + 10)
        var directorySize = u32(eocd + 12)
        var directoryOffset = u32(eocd + 16)
        // ZIP64 locator right before the EOCD record.
        if eocd >= 20, u32(eocd - 20) == 0x0706_4B50 {
            let record = u64(eocd - 20 + 8)
            guard record >= 0, record + 56 <= size, u32(record) == 0x0606_4B50 else {
                throw fail(.corrupt, "the ZIP64 end-of-central-directory record is missing or out of range; the archive is corrupt")
            }
            count = u64(record + 32)
            directorySize = u64(record + 40)
            directoryOffset = u64(record + 48)
        }
        guard directoryOffset >= 0, directorySize >= 0, directoryOffset + directorySize <= size, count >= 0 else {
            throw fail(.truncated, "the central directory (\(directorySize) bytes at \(directoryOffset)) lies outside the \(size)-byte file; the archive is truncated")
        }
        var members: [ZipMember] = []
        var p = directoryOffset
        for index in 0..<count {
            guard p + 46 <= directoryOffset + directorySize, u32(p) == 0x0201_4B50 else {
                throw fail(.corrupt, "central directory entry \(index) at byte \(p) is damaged; the archive is corrupt")
            }
            let flags = u16(p + 8), method = u16(p + 10)
            let crc = UInt32(u32(p + 16))
            var compressed = u32(p + 20), uncompressed = u32(p + 24)
            let nameLength = u16(p + 28), extraLength = u16(p + 30), commentLength = u16(p + 32)
            var local = u32(p + 42)
            let end = p + 46 + nameLength + extraLength + commentLength
            guard end <= directoryOffset + directorySize else {
                throw fail(.corrupt, "central directory entry \(index) runs past the directory; the archive is corrupt")
            }
            let name = String(decoding: bytes[(p + 46)..<(p + 46 + nameLength)], as: UTF8.self)
            // ZIP64 extra field: the 8-byte values of the fields stored as 0xFFFFFFFF, in order.
            var e = p + 46 + nameLength
            let extraEnd = e + extraLength
            while e + 4 <= extraEnd {
                let id = u16(e), length = u16(e + 2)
                if id == 0x0001 {
                    var q = e + 4
                    if uncompressed == 0xFFFF_FFFF, q + 8 <= e + 4 + length { uncompressed = u64(q); q += 8 }
                    if compressed == 0xFFFF_FFFF, q + 8 <= e + 4 + length { compressed = u64(q); q += 8 }
                    if local == 0xFFFF_FFFF, q + 8 <= e + 4 + length { local = u64(q); q += 8 }
                }
                e += 4 + length
            }
            guard local >= 0, compressed >= 0, uncompressed >= 0, local + 30 <= size else {
                throw fail(.corrupt, "member '\(name)' has sizes or an offset outside the file; the archive is corrupt")
            }
            members.append(ZipMember(name: name, method: method, compressedSize: compressed, size: uncompressed,
                                     crc32: crc, localHeaderOffset: local, encrypted: flags & 1 != 0))
            p = end
        }
        return members
    }

    /// Streams the uncompressed bytes of `member`, checking its size and CRC32.
    public func streamMember(_ member: ZipMember, sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        let bytes = file.bytes
        let name = member.name
        guard !member.encrypted else {
            throw fail(.unsupported, name, "the member is encrypted; re-save the archive without a password")
        }
        let local = member.localHeaderOffset
        guard UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: local, as: UInt32.self)) == 0x0403_4B50 else {
            throw fail(.corrupt, name, "no local header at byte \(local); the archive is corrupt")
        }
        let nameLength = Int(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: local + 26, as: UInt16.self)))
        let extraLength = Int(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: local + 28, as: UInt16.self)))
        let start = local + 30 + nameLength + extraLength
        guard start + member.compressedSize <= bytes.count else {
            throw fail(.truncated, name, "the member's \(member.compressedSize) bytes at \(start) run past the end of the \(bytes.count)-byte file; the archive is truncated")
        }
        var crc: UInt32 = 0
        var produced = 0
        func checkedSink(_ piece: UnsafeRawBufferPointer) throws {
            produced += piece.count
            guard produced <= member.size else {
                throw fail(.corrupt, name, "the member decompresses to more than its recorded \(member.size) bytes; the archive is corrupt")
            }
            crc = crc32Update(crc, piece.baseAddress, count: piece.count)
            try sink(piece)
        }
        let chunk = pieceSize
        switch member.method {
        case 0:
            guard member.compressedSize == member.size else {
                throw fail(.corrupt, name, "a stored member with compressed size \(member.compressedSize) ≠ size \(member.size); the archive is corrupt")
            }
            var offset = 0
            while offset < member.size {
                let n = min(chunk, member.size - offset)
                try checkedSink(UnsafeRawBufferPointer(rebasing: bytes[(start + offset)..<(start + offset + n)]))
                offset += n
            }
        case 8:
            do {
                let inflater = try Inflater(format: .raw, path: path, member: name, outputChunk: chunk)
                var offset = 0
                while offset < member.compressedSize {
                    let n = min(chunk, member.compressedSize - offset)
                    try inflater.feed(UnsafeRawBufferPointer(rebasing: bytes[(start + offset)..<(start + offset + n)]), sink: checkedSink)
                    offset += n
                }
                try inflater.finish()
            } catch let error as InflateError {
                throw ImportError(error)
            }
        default:
            throw fail(.unsupported, name, "compression method \(member.method) is not supported (only stored and deflate); re-save with numpy.savez or savez_compressed")
        }
        guard produced == member.size else {
            throw fail(.truncated, name, "the member holds \(produced) bytes, but the directory records \(member.size); the archive is truncated or corrupt")
        }
        guard crc == member.crc32 else {
            throw fail(.checksumMismatch, name, "CRC32 mismatch (stored \(hex32(member.crc32)), computed \(hex32(crc))); the archive is corrupt — download it again")
        }
    }

    // MARK: Arrays

    private func member(for array: String) throws -> ZipMember {
        guard let member = members.first(where: { $0.name == array + ".npy" }) else {
            throw fail(.invalidInput, nil, "no array '\(array)' in the archive (it has: \(arrayNames.joined(separator: ", ")))")
        }
        return member
    }

    private struct StopStreaming: Error {}

    /// The header of array `array` (reads only as much of the member as the header needs).
    public func header(_ array: String) throws -> NPYHeader {
        var found: NPYHeader? = nil
        do {
            try streamArray(array) { header, _ in
                found = header
                throw StopStreaming()
            }
        } catch is StopStreaming {}
        if let found { return found }
        // An empty array: the stream ended without data; the full read returns the header.
        return try readArray(array).header
    }

    /// Streams the data bytes of array `array`: `sink` gets the header and successive
    /// pieces of the C-order element bytes (their total is `header.byteCount`).
    @discardableResult
    public func streamArray(_ array: String, sink: (NPYHeader, UnsafeRawBufferPointer) throws -> Void) throws -> NPYHeader {
        let member = try self.member(for: array)
        var prefix: [UInt8] = []
        var header: NPYHeader? = nil
        var dataBytes = 0
        try streamMember(member) { piece in
            var piece = piece
            while header == nil {
                if prefix.count >= 10, Array(prefix[0..<6]) != NPYParser.magic || ![1, 2, 3].contains(prefix[6]) {
                    _ = try NPYParser.parse(prefix, path: path, member: member.name)   // throws: not a .npy
                }
                let target = NPYParser.totalHeaderLength(prefix) ?? (prefix.count < 10 ? 10 : 12)
                if prefix.count == target {
                    header = try NPYParser.parse(prefix, path: path, member: member.name)
                    break
                }
                guard piece.count > 0 else { return }
                let take = min(piece.count, target - prefix.count)
                prefix.append(contentsOf: piece.prefix(take))
                piece = UnsafeRawBufferPointer(rebasing: piece[take...])
            }
            guard piece.count > 0 else { return }
            dataBytes += piece.count
            try sink(header!, piece)
        }
        guard let header else {
            throw fail(.truncated, member.name, "the member ends inside the .npy header; the archive is truncated or corrupt")
        }
        guard dataBytes == header.byteCount else {
            throw fail(.corrupt, member.name, "the .npy header announces \(header.shape) of \(header.descr) = \(header.byteCount) bytes, but the member holds \(dataBytes); the file is corrupt")
        }
        return header
    }

    /// Reads a whole array into memory.
    public func readArray(_ array: String) throws -> NPYArray {
        let member = try self.member(for: array)
        var whole: [UInt8] = []
        whole.reserveCapacity(member.size)
        try streamMember(member) { whole.append(contentsOf: $0) }
        let header = try NPYParser.parse(whole, path: path, member: member.name)
        guard whole.count - header.dataOffset == header.byteCount else {
            throw fail(.corrupt, member.name, "the .npy header announces \(header.shape) of \(header.descr) = \(header.byteCount) bytes, but the member holds \(whole.count - header.dataOffset); the file is corrupt")
        }
        return NPYArray(header: header, bytes: Array(whole[header.dataOffset...]))
    }
}

/// Parsing of .npy headers.
enum NPYParser {
    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]   // "\x93NUMPY"

    /// Magic + version + length field + header text, once enough bytes are there to know.
    static func totalHeaderLength(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else { return nil }
        if bytes[6] == 1 { return 10 + (Int(bytes[8]) | Int(bytes[9]) << 8) }
        guard bytes.count >= 12 else { return nil }
        return 12 + (Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24)
    }

    static func parse(_ bytes: [UInt8], path: String, member: String?) throws -> NPYHeader {
        func fail(_ kind: ImportError.Kind, _ reason: String) -> ImportError {
            ImportError(path: path, member: member, kind: kind, reason: reason)
        }
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else {
            throw fail(.badSignature, "not a .npy array (the \\x93NUMPY magic is missing)")
        }
        let major = bytes[6]
        guard [1, 2, 3].contains(major) else {
            throw fail(.unsupported, ".npy format version \(major).\(bytes[7]) is not supported (1, 2 and 3 are)")
        }
        guard let total = totalHeaderLength(bytes), total <= bytes.count else {
            throw fail(.truncated, "the .npy header is cut off")
        }
        let text = String(decoding: bytes[(major == 1 ? 10 : 12)..<total], as: UTF8.self)
        guard let descr = stringValue(text, key: "descr") else {
            throw fail(.corrupt, "the .npy header has no 'descr' string: \(text.trimmingTrailingSpaces); structured dtypes are not supported")
        }
        guard let fortran = boolValue(text, key: "fortran_order") else {
            throw fail(.corrupt, "the .npy header has no 'fortran_order': \(text.trimmingTrailingSpaces)")
        }
        guard let shape = tupleValue(text, key: "shape") else {
            throw fail(.corrupt, "the .npy header has no valid 'shape' tuple: \(text.trimmingTrailingSpaces)")
        }
        let chars = Array(descr)
        guard chars.count >= 3, let size = Int(String(chars[2...])), "uifb".contains(chars[1]) else {
            throw fail(.unsupported, "dtype '\(descr)' is not supported (use |u1, |i1, |b1, <i2…<i8, <u2…<u8, <f2, <f4 or <f8)")
        }
        let order = chars[0], kind = chars[1]
        guard order == "<" || order == "|" || order == "=" else {
            throw fail(.unsupported, "dtype '\(descr)' is big-endian; convert the array with .astype('<\(kind)\(size)') before saving")
        }
        let valid: Bool
        switch kind {
        case "u", "i": valid = [1, 2, 4, 8].contains(size)
        case "f": valid = [2, 4, 8].contains(size)
        default: valid = size == 1
        }
        guard valid else { throw fail(.unsupported, "dtype '\(descr)' is not supported") }
        guard !fortran || shape.filter({ $0 > 1 }).count <= 1 else {
            throw fail(.unsupported, "the array is stored in Fortran order; save it with numpy.ascontiguousarray first")
        }
        return NPYHeader(descr: descr, kind: kind, itemSize: size, fortranOrder: fortran, shape: shape, dataOffset: total)
    }

    /// The text after `'key':` with leading spaces removed.
    private static func after(_ text: String, key: String) -> Substring? {
        for quote in ["'", "\""] {
            if let range = text.range(of: quote + key + quote) {
                var rest = text[range.upperBound...].drop(while: { $0 == " " })
                guard rest.first == ":" else { return nil }
                rest = rest.dropFirst().drop(while: { $0 == " " })
                return rest
            }
        }
        return nil
    }

    static func stringValue(_ text: String, key: String) -> String? {
        guard let rest = after(text, key: key), let quote = rest.first, quote == "'" || quote == "\"" else { return nil }
        let body = rest.dropFirst()
        guard let end = body.firstIndex(of: quote) else { return nil }
        return String(body[..<end])
    }

    static func boolValue(_ text: String, key: String) -> Bool? {
        guard let rest = after(text, key: key) else { return nil }
        if rest.hasPrefix("True") { return true }
        if rest.hasPrefix("False") { return false }
        return nil
    }

    static func tupleValue(_ text: String, key: String) -> [Int]? {
        guard let rest = after(text, key: key), rest.first == "(", let end = rest.firstIndex(of: ")") else { return nil }
        let inner = rest[rest.index(after: rest.startIndex)..<end]
        var values: [Int] = []
        for part in inner.split(separator: ",") {
            let trimmed = part.trimmedOf(" ")
            if trimmed.isEmpty { continue }
            guard let v = Int(trimmed), v >= 0 else { return nil }
            values.append(v)
        }
        return values
    }
}

extension StringProtocol {
    fileprivate var trimmingTrailingSpaces: String {
        String(self.reversed().drop(while: { $0 == " " || $0 == "\n" }).reversed())
    }

    fileprivate func trimmedOf(_ set: Character) -> String {
        String(self.drop(while: { $0 == set }).reversed().drop(while: { $0 == set }).reversed())
    }
}
