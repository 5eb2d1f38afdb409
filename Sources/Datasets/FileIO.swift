// Adapters from the shared file helpers in Formats (AtomicFileWriter, MappedFile, zlib's
// CRC32) to this module's errors: every failure names the file, as `DatasetError` for
// dataset and corpus files and as `ImportError` for the importers' inputs.
import Formats

#if !_endian(little)
#error("Datasets reads and writes little-endian data by reinterpreting memory; port the copies first.")
#endif

extension DatasetError {
    /// A failed system call on a dataset or corpus file (`.io`).
    init(_ error: FileIOError) {
        self.init(path: error.path, kind: .io, reason: error.reason)
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

/// Writes `bytes` to `path` atomically; failures are `DatasetError`s.
func writeFileAtomically(_ path: String, _ bytes: [UInt8]) throws {
    try withDatasetErrors { try AtomicFileWriter.write(bytes, to: path) }
}
