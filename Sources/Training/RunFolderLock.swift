#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Distributed
import Foundation

/// Exclusive use of a run folder for the lifetime of a training run (rank 0 holds it).
///
/// The lock is the file `RUNDIR/.clipit.lock`, created with `O_CREAT | O_EXCL` and holding
/// "host pid". A second job on the same folder — a user's second launch, or a new job
/// while orphaned ranks of a killed one still run — is refused with the holder named. A
/// lock left by a process that no longer exists on this host (a killed job) is stale and
/// is taken over; one held from another host cannot be checked from here and is refused
/// with what to do.
public final class RunFolderLock {
    public let path: String
    private var held = true

    /// Takes the lock of `directory` (which must exist).
    public init(directory: String) throws {
        path = (directory as NSString).appendingPathComponent(".clipit.lock")
        let me = "\(localHostName()) \(getpid())\n"
        for _ in 0..<2 {
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o644)
            if fd >= 0 {
                _ = me.withCString { write(fd, $0, strlen($0)) }
                close(fd)
                return
            }
            guard errno == EEXIST else {
                throw TrainingError("cannot create the run-folder lock '\(path)': \(String(cString: strerror(errno))); "
                                    + "check that the output directory is writable")
            }
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            let parts = holder.split(separator: " ")
            if parts.count == 2, String(parts[0]) == localHostName(), let pid = Int32(parts[1]),
               kill(pid, 0) != 0 && errno == ESRCH {
                unlink(path)   // stale: its process is gone; try again once
                continue
            }
            throw TrainingError("run folder '\(directory)' is in use by process \(holder.isEmpty ? "?" : holder) "
                                + "('\(path)'): wait for that job to end, or remove the lock file if it is gone")
        }
        throw TrainingError("cannot take the run-folder lock '\(path)': it keeps reappearing")
    }

    /// Releases the lock (also done when the lock is deallocated).
    public func release() {
        guard held else { return }
        held = false
        unlink(path)
    }

    deinit { release() }
}
