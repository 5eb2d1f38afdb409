// The one error type of the low-level file helpers (AtomicFileWriter, MappedFile).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A system call on a file failed: which file, which call, the C library's `errno`, and a
/// readable reason. Modules map it into their own error type at their API (e.g.
/// `SafeTensorsError(kind: .io)`), keeping `path` and `reason`.
public struct FileIOError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file the caller asked for (not the temporary an atomic write goes through).
    public let path: String
    /// The failed call: "open", "fstat", "mmap", "write", "fsync", "close" or "rename".
    public let call: String
    /// `errno` after the call.
    public let code: Int32
    /// The problem, without the path: the call, the C library's message and a hint.
    public let reason: String

    public init(path: String, call: String, code: Int32, reason: String) {
        self.path = path
        self.call = call
        self.code = code
        self.reason = reason
    }

    /// The current `errno` for a failed `call` on `path`; `reason` defaults to
    /// "<call> failed (<strerror>)", and `hint` is appended after "; ".
    static func current(path: String, call: String, reason: String? = nil, hint: String? = nil) -> FileIOError {
        let code = errno
        let message = String(cString: strerror(code))
        var text = reason.map { "\($0) (\(message))" } ?? "\(call) failed (\(message))"
        if let hint { text += "; " + hint }
        return FileIOError(path: path, call: call, code: code, reason: text)
    }

    public var description: String { "\(path): \(reason)" }
}
