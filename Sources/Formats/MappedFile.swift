// A whole file mapped read-only: the one mmap in the package (safetensors, datasets,
// report corpora, npz archives and PNG files are all read through it).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A whole file mapped read-only (`PROT_READ`, `MAP_SHARED`): pages are loaded on first
/// touch, so a rank that reads only its slice only pages in that slice. The mapping lives
/// as long as the object; an empty file has `base == nil` and `size == 0`.
///
/// Throws `FileIOError` (call "open", "fstat" or "mmap") naming `path`.
public final class MappedFile: @unchecked Sendable {  // immutable after init
    public let path: String
    public let base: UnsafeRawPointer?
    public let size: Int

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw FileIOError.current(path: path, call: "open", reason: "cannot open for reading", hint: "check the path")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FileIOError.current(path: path, call: "fstat") }
        size = Int(st.st_size)
        if size == 0 {
            base = nil
            return
        }
        guard let map = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), map != MAP_FAILED else {
            throw FileIOError.current(path: path, call: "mmap", reason: "mmap of \(size) bytes failed")
        }
        base = UnsafeRawPointer(map)
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), size) }
    }

    /// The file's bytes, valid while the object lives.
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: size) }
}
