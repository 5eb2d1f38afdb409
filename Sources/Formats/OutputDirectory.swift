import Foundation

/// Output folders (`--out`), created with errors that name the path and say what to do.
public enum OutputDirectory {
    /// `mkdir -p path`: creates every missing folder on the way. Throws `FileIOError` when a
    /// component exists but is not a folder, or when a folder cannot be created (a
    /// read-only file system, no permission), naming the component that failed.
    public static func create(_ path: String) throws {
        precondition(!path.isEmpty, "OutputDirectory.create: empty path")
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += (prefix.isEmpty || prefix.hasSuffix("/") ? "" : "/") + component
            var info = stat()
            if stat(prefix, &info) == 0 {
                guard info.st_mode & S_IFMT == S_IFDIR else {
                    throw FileIOError(path: path, call: "mkdir", code: ENOTDIR,
                                      reason: "cannot create the output folder: '\(prefix)' is a file, not a folder; "
                                          + "choose another --out or move the file away")
                }
                continue
            }
            if mkdir(prefix, 0o777) != 0 && errno != EEXIST {
                let hint: String
                switch errno {
                case EROFS: hint = "choose an --out on a writable file system"
                case EACCES, EPERM: hint = "choose an --out you can write to"
                case ENOSPC, EDQUOT: hint = "free space or choose another --out"
                default: hint = "choose another --out"
                }
                throw FileIOError.current(path: path, call: "mkdir", reason: "cannot create the output folder '\(prefix)'",
                                          hint: hint)
            }
        }
    }
}
