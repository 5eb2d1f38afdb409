// Low-level file helpers shared by the dataset, corpus and PNG writers: an atomic,
// buffered, checksumming writer; a read-only memory map; CRC32; JSON string escaping.
import CZlib
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

#if !_endian(little)
#error("Datasets reads and writes little-endian data by reinterpreting memory; port the copies first.")
#endif

/// CRC-32 (zlib's `crc32`, the ISO-HDLC / PNG polynomial) of `count` bytes at `pointer`,
/// continuing from `initial` (0 for a fresh checksum).
func crc32Update(_ initial: UInt32, _ pointer: UnsafeRawPointer?, count: Int) -> UInt32 {
    var crc = uLong(initial)
    guard var p = pointer?.assumingMemoryBound(to: Bytef.self) else { return initial }
    var remaining = count
    while remaining > 0 {
        let chunk = min(remaining, 1 << 30)   // zlib takes a 32-bit length
        crc = crc32(crc, p, uInt(chunk))
        p += chunk
        remaining -= chunk
    }
    return UInt32(truncatingIfNeeded: crc)
}

/// The text of the C library's message for `errno`.
func errnoText() -> String { String(cString: strerror(errno)) }

/// Writes a file through a temporary in the same directory, then fsyncs and renames it
/// into place, so readers only ever see a complete file. Keeps a running CRC32 of every
/// byte written. If `commit()` is never reached the temporary is removed.
final class AtomicFileWriter {
    let path: String
    let temporary: String
    private var fd: Int32
    private var buffer: UnsafeMutableRawPointer
    private var buffered = 0
    private let capacity = 1 << 20
    private(set) var crc: UInt32 = 0
    private(set) var bytesWritten = 0
    private var finished = false

    init(path: String) throws {
        self.path = path
        self.temporary = "\(path).tmp-\(getpid())"
        fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else {
            throw DatasetError(path: path, kind: .io,
                               reason: "cannot create the temporary file '\(temporary)' (\(errnoText())); check that the directory exists and is writable")
        }
        buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 64)
    }

    deinit {
        buffer.deallocate()
        if !finished { abandon() }
    }

    private func fail(_ call: String) -> DatasetError {
        DatasetError(path: path, kind: .io, reason: "\(call) failed while writing (\(errnoText()))")
    }

    /// Appends bytes (buffered) and folds them into the running CRC.
    func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count > 0 else { return }
        crc = crc32Update(crc, bytes.baseAddress, count: bytes.count)
        bytesWritten += bytes.count
        if buffered + bytes.count > capacity { try flush() }
        if bytes.count >= capacity {
            try writeAll(bytes)
        } else {
            (buffer + buffered).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
            buffered += bytes.count
        }
    }

    func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Appends the little-endian bytes of an integer.
    func write<T: FixedWidthInteger>(integer value: T) throws {
        var little = value.littleEndian
        try withUnsafeBytes(of: &little) { try write($0) }
    }

    /// Appends `count` zero bytes.
    func writeZeros(_ count: Int) throws {
        try write([UInt8](repeating: 0, count: count))
    }

    private func flush() throws {
        guard buffered > 0 else { return }
        try writeAll(UnsafeRawBufferPointer(start: buffer, count: buffered))
        buffered = 0
    }

    /// write(2) until every byte is out, retrying EINTR and short writes.
    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let written = systemWrite(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw fail("write")
            }
            offset += written
        }
    }

    /// Flushes, fsyncs and renames the temporary onto `path`; then fsyncs the directory.
    func commit() throws {
        precondition(!finished, "AtomicFileWriter.commit called twice")
        try flush()
        guard fsync(fd) == 0 else { throw fail("fsync") }
        finished = true
        guard close(fd) == 0 else { unlink(temporary); throw fail("close") }
        guard rename(temporary, path) == 0 else { unlink(temporary); throw fail("rename to the final name") }
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[..<$0]) } ?? "."
        let dirfd = open(directory.isEmpty ? "/" : directory, O_RDONLY)
        if dirfd >= 0 { _ = fsync(dirfd); close(dirfd) }
    }

    /// Closes and deletes the temporary; `path` is left as it was.
    func abandon() {
        guard !finished else { return }
        finished = true
        close(fd)
        unlink(temporary)
    }
}

/// write(2), reachable from types that have their own `write` methods.
private func systemWrite(_ fd: Int32, _ pointer: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, pointer, count)
}

/// Writes `bytes` to `path` atomically.
func writeFileAtomically(_ path: String, _ bytes: [UInt8]) throws {
    let writer = try AtomicFileWriter(path: path)
    try writer.write(bytes)
    try writer.commit()
}

/// A whole file mapped read-only (PROT_READ, MAP_SHARED: pages are loaded on first touch,
/// so a rank that reads only its slice only pages in that slice).
final class MappedFile: @unchecked Sendable {  // immutable after init
    let path: String
    let base: UnsafeRawPointer?
    let size: Int

    init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw DatasetError(path: path, kind: .io,
                               reason: "cannot open for reading (\(errnoText())); check the path")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw DatasetError(path: path, kind: .io, reason: "fstat failed (\(errnoText()))")
        }
        size = Int(st.st_size)
        if size == 0 {
            base = nil
            return
        }
        guard let map = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), map != MAP_FAILED else {
            throw DatasetError(path: path, kind: .io, reason: "mmap of \(size) bytes failed (\(errnoText()))")
        }
        base = UnsafeRawPointer(map)
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), size) }
    }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: size) }
}

/// A JSON string literal for `value`, escaping quotes, backslashes and control characters
/// (deterministic, unlike Foundation's encoder, so generated files are byte-identical).
func jsonString(_ value: String) -> String {
    var out = "\""
    for scalar in value.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20:
            let hex = String(scalar.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}
