// TensorBoard event files: `TensorBoardEvent`s in TFRecord framing, one file per process
// run, written record by record so that a killed run keeps everything it logged.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Appends events to a new TensorBoard event file,
/// `<directory>/events.out.tfevents.<unix time>.<hostname>` (`.1`, `.2`, … appended if
/// that name is taken), which starts with the file-version event. Each event is framed
/// and handed to the kernel with one `write(2)` at once, not buffered: a crashed process
/// loses nothing it wrote (no `fsync`: a machine crash may). TensorBoard reads every
/// events file of a folder (`tensorboard --logdir`), so a resumed run adds a file.
///
/// Failures throw `FileIOError` naming the file.
public final class TensorBoardEventWriter {
    /// The event file being written.
    public let path: String
    private let handle: FileHandle

    /// Creates `directory` (and its parents) if missing and a new event file in it.
    public init(directory: String, wallTime: Double = Date().timeIntervalSince1970) throws {
        try OutputDirectory.create(directory)
        let base = directory + "/events.out.tfevents.\(Int(wallTime)).\(hostName())"
        var candidate = base, fd: Int32 = -1
        for suffix in 1...1000 {   // another process (or a resume in the same second) took the name
            fd = open(candidate, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0o644)
            if fd >= 0 || errno != EEXIST { break }
            candidate = base + ".\(suffix)"
        }
        path = candidate
        guard fd >= 0 else {
            throw FileIOError.current(path: candidate, call: "open", reason: "cannot create the TensorBoard event file",
                                      hint: "check that '\(directory)' is writable")
        }
        handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        try write(TensorBoardEvent(wallTime: wallTime, step: 0, payload: .fileVersion(TensorBoardEvent.fileVersion)))
    }

    /// Appends one event (framed, written at once).
    public func write(_ event: TensorBoardEvent) throws {
        do {
            try handle.write(contentsOf: TFRecord.frame(event.encoded()))
        } catch {
            throw FileIOError(path: path, call: "write", code: Int32(truncatingIfNeeded: (error as NSError).code),
                              reason: "cannot append to the TensorBoard event file (\(error.localizedDescription)); "
                                  + "check free space in the run folder")
        }
    }

    /// Appends one summary event of `values` at `step`.
    public func write(step: Int, values: [TensorBoardValue], wallTime: Double = Date().timeIntervalSince1970) throws {
        try write(TensorBoardEvent(wallTime: wallTime, step: step, payload: .summary(values)))
    }

    /// The paths of the event files in `directory` (names containing "tfevents", as
    /// TensorBoard selects them), sorted by name; empty when the folder does not exist.
    public static func eventFiles(in directory: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.contains("tfevents") }.sorted().map { directory + "/" + $0 }
    }

    /// Deletes the event files of `directory` (a run started afresh in the same folder).
    public static func removeEventFiles(in directory: String) throws {
        for path in eventFiles(in: directory) where unlink(path) != 0 && errno != ENOENT {
            throw FileIOError.current(path: path, call: "unlink", reason: "cannot remove the old TensorBoard event file",
                                      hint: "delete it by hand or choose another --out")
        }
    }

    /// Drops from every event file of `directory` the events after `step` and a record a
    /// killed writer left incomplete: a run resumed from its checkpoint at `step` logs the
    /// later steps again, and TensorBoard would otherwise show them twice. Files are
    /// rewritten atomically, and only when something is dropped; a file that is corrupt
    /// before its end is left as it is (TensorBoard reads it up to the bad record).
    public static func trim(directory: String, toStep step: Int) throws {
        for path in eventFiles(in: directory) {
            let bytes = try readEventFile(path)
            guard let scan = try? TFRecord.scan(bytes, path: path, allowingTruncatedTail: true) else { continue }
            let kept = scan.records.filter { range in
                guard let event = try? TensorBoardEvent(decoding: bytes[range]) else { return true }
                return event.step <= step
            }
            guard kept.count < scan.records.count || scan.truncatedTail else { continue }
            try AtomicFileWriter.write(kept.flatMap { TFRecord.frame(Array(bytes[$0])) }, to: path)
        }
    }
}

/// Reads TensorBoard event files, checking both CRCs of every record.
public enum TensorBoardEventReader {
    /// Every event of the file at `path`, in file order. Throws `ImportError` naming the
    /// file: `.io` (cannot open), `.truncated` (ends inside a record), `.checksumMismatch`
    /// (a CRC differs), `.corrupt` (a record is not an `Event` protobuf).
    public static func read(path: String) throws -> [TensorBoardEvent] {
        try events(in: try readEventFile(path), path: path)
    }

    /// The events of a file's bytes; `path` names it in errors.
    public static func events(in bytes: [UInt8], path: String) throws -> [TensorBoardEvent] {
        try TFRecord.records(in: bytes, path: path).enumerated().map { index, range in
            do {
                return try TensorBoardEvent(decoding: bytes[range])
            } catch let error as ProtobufDecodeError {
                throw ImportError(path: path, kind: .corrupt,
                                  reason: "record \(index) at byte \(range.lowerBound - 12) is not an Event protobuf "
                                      + "(\(error.reason)); the file is corrupt or not a TensorBoard event file")
            }
        }
    }
}

/// The bytes of the file at `path` (an `ImportError` of kind `.io` when it cannot be read).
private func readEventFile(_ path: String) throws -> [UInt8] {
    let file = try openForImport(path)
    return withExtendedLifetime(file) { Array(file.bytes) }
}

/// This machine's name (for event file names), "localhost" if unknown.
private func hostName() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
    let name = String(cString: buffer).filter { $0 != "/" }
    return name.isEmpty ? "localhost" : name
}
