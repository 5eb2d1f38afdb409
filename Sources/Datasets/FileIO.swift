// Adapters from the shared file helpers in Formats (AtomicFileWriter, MappedFile, zlib's
// CRC32) to this module's errors: every failure names the file, as `DatasetError` for
// dataset and corpus files and as `ImportError` for the importers' inputs.
import Formats

#if !_endian(little)
#error("Datasets reads and writes little-endian data by reinterpreting memory; port the copies first.")
#endif

/// CRC-32 (zlib's `crc32`, the ISO-HDLC / PNG polynomial) of `count` bytes at `pointer`,
/// continuing from `initial` (0 for a fresh checksum).
func crc32Update(_ initial: UInt32, _ pointer: UnsafeRawPointer?, count: Int) -> UInt32 {
    Zlib.crc32(UnsafeRawBufferPointer(start: pointer, count: count), initial: initial)
}

extension DatasetError {
    /// A failed system call on a dataset or corpus file (`.io`).
    init(_ error: FileIOError) {
        self.init(path: error.path, kind: .io, reason: error.reason)
    }
}

extension ImportError {
    /// A failed system call on an importer's input (`.io`).
    init(_ error: FileIOError) {
        self.init(path: error.path, kind: .io, reason: error.reason)
    }

    /// Undecodable compressed data in an importer's input, same kind, path and member.
    init(_ error: InflateError) {
        let kind: Kind
        switch error.kind {
        case .io: kind = .io
        case .truncated: kind = .truncated
        case .checksumMismatch: kind = .checksumMismatch
        case .corrupt: kind = .corrupt
        }
        self.init(path: error.path, member: error.member, kind: kind, reason: error.reason)
    }
}

/// Runs `body`, turning a `FileIOError` into a `DatasetError` naming the file.
func withDatasetErrors<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as FileIOError {
        throw DatasetError(error)
    }
}

/// Maps a dataset or corpus file read-only; failures are `DatasetError`s.
func mapDatasetFile(_ path: String) throws -> MappedFile {
    try withDatasetErrors { try MappedFile(path: path) }
}

/// Maps an importer's input read-only; failures are `ImportError`s.
func openForImport(_ path: String) throws -> MappedFile {
    do {
        return try MappedFile(path: path)
    } catch let error as FileIOError {
        throw ImportError(error)
    }
}

/// Writes `bytes` to `path` atomically; failures are `DatasetError`s.
func writeFileAtomically(_ path: String, _ bytes: [UInt8]) throws {
    try withDatasetErrors { try AtomicFileWriter.write(bytes, to: path) }
}
