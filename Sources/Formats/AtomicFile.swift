// Atomic file writing: the one place in the package that creates, writes, fsyncs and
// renames output files (safetensors checkpoints and exports, .cds datasets, report
// corpora, PNGs, manifests, pairs files, .npy arrays).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a file so that readers only ever see the old file or the complete new one.
///
/// Bytes go to the temporary `<path>.tmp-<pid>` in the same directory (so the rename
/// cannot cross file systems), through a 1 MiB buffer (larger pieces are written
/// directly); `write(2)` is retried on `EINTR` and short writes. `commit()` flushes,
/// `fsync`s the temporary, renames it onto `path` and `fsync`s the directory so the
/// rename itself survives a crash. Released or `abandon()`ed before `commit()`, the
/// temporary is deleted and `path` is left as it was.
///
///     let writer = try AtomicFileWriter(path: path)
///     try writer.write(header)
///     try writer.write(payload)
///     try writer.commit()
///
/// Every failure throws `FileIOError` naming `path` and the failed call.
public final class AtomicFileWriter {
    public let path: String
    public let temporary: String
    /// CRC-32 (zlib) of every byte written so far; 0 unless created with `computingCRC32`.
    public private(set) var crc32: UInt32 = 0
    public private(set) var bytesWritten = 0

    private var fd: Int32
    private let buffer: UnsafeMutableRawPointer
    private var buffered = 0
    private let capacity = 1 << 20
    private let computingCRC32: Bool
    private var finished = false

    /// Creates the temporary. With `computingCRC32`, `crc32` tracks the bytes written.
    public init(path: String, computingCRC32: Bool = false) throws {
        self.path = path
        self.temporary = "\(path).tmp-\(getpid())"
        self.computingCRC32 = computingCRC32
        fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else {
            throw FileIOError.current(path: path, call: "open", reason: "cannot create the temporary file '\(temporary)'",
                                      hint: "check that the directory exists and is writable")
        }
        buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 64)
    }

    deinit {
        buffer.deallocate()
        if !finished { abandon() }
    }

    /// Writes `bytes` to `path` atomically in one call.
    public static func write(_ bytes: UnsafeRawBufferPointer, to path: String) throws {
        let writer = try AtomicFileWriter(path: path)
        try writer.write(bytes)
        try writer.commit()
    }

    /// Writes `bytes` to `path` atomically in one call.
    public static func write(_ bytes: [UInt8], to path: String) throws {
        try bytes.withUnsafeBytes { try write($0, to: path) }
    }

    private func fail(_ call: String) -> FileIOError {
        FileIOError.current(path: path, call: call, reason: "\(call) failed while writing")
    }

    /// Appends bytes (buffered).
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        precondition(!finished, "AtomicFileWriter.write after commit or abandon")
        guard bytes.count > 0 else { return }
        if computingCRC32 { crc32 = Zlib.crc32(bytes, initial: crc32) }
        bytesWritten += bytes.count
        if buffered + bytes.count > capacity { try flush() }
        if bytes.count >= capacity {
            try writeAll(bytes)
        } else {
            (buffer + buffered).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
            buffered += bytes.count
        }
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Appends the little-endian bytes of an integer.
    public func write<T: FixedWidthInteger>(integer value: T) throws {
        var little = value.littleEndian
        try withUnsafeBytes(of: &little) { try write($0) }
    }

    /// Appends `count` zero bytes.
    public func writeZeros(_ count: Int) throws {
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

    /// Flushes, fsyncs and renames the temporary onto `path`, then fsyncs the directory.
    /// On failure the temporary is removed and `path` is left as it was.
    public func commit() throws {
        precondition(!finished, "AtomicFileWriter.commit after commit or abandon")
        do {
            try flush()
            guard fsync(fd) == 0 else { throw fail("fsync") }
        } catch {
            abandon()
            throw error
        }
        finished = true
        guard close(fd) == 0 else { let error = fail("close"); unlink(temporary); throw error }
        guard rename(temporary, path) == 0 else { let error = fail("rename"); unlink(temporary); throw error }
        // Make the rename itself durable.
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[..<$0]) } ?? "."
        let dirfd = open(directory.isEmpty ? "/" : directory, O_RDONLY)
        if dirfd >= 0 { _ = fsync(dirfd); close(dirfd) }
    }

    /// Closes and deletes the temporary; `path` is left as it was. Does nothing after `commit()`.
    public func abandon() {
        guard !finished else { return }
        finished = true
        close(fd)
        unlink(temporary)
    }
}

/// write(2), reachable from a type that has its own `write` methods.
private func systemWrite(_ fd: Int32, _ pointer: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, pointer, count)
}
