import Foundation

/// The files of a data folder as `clipit synth` and the importers write it:
/// `<split>.cds` per split, `reports.jsonl` (the external report corpus) and, for
/// retriever pretraining, `paired.cds` + `paired.jsonl` (images and their own reports,
/// aligned by index). Commands take `--data DIR` and find their files here.
public struct DataFolder: Sendable {
    public let path: String

    /// `path`, which must be a folder.
    public init(_ path: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DatasetError(path: path, kind: .io, reason: "is not a folder; pass the folder clipit synth or clipit import wrote")
        }
        self.path = path
    }

    /// `name` inside the folder, or nil when the folder has no such file.
    public func file(_ name: String) -> String? {
        let candidate = (path as NSString).appendingPathComponent(name)
        return FileManager.default.fileExists(atPath: candidate) ? candidate : nil
    }

    /// The `.cds` file of `split` (`train`, `val`, `test`), or nil.
    public func split(_ split: String) -> String? { file(split + ".cds") }

    /// The `.cds` of `split`, or an error naming the folder and what to do.
    public func requiredSplit(_ split: String) throws -> String {
        guard let found = self.split(split) else {
            throw DatasetError(path: path, kind: .io, reason: "has no \(split).cds; make the benchmark with clipit synth "
                               + "--out \(path) or import a dataset there (clipit import)")
        }
        return found
    }

    /// The report corpus `reports.jsonl`, or nil.
    public var reports: String? { file("reports.jsonl") }

    /// The paired set for retriever pretraining: `paired.cds` and `paired.jsonl`.
    public func pairedSet() throws -> (images: String, reports: String) {
        guard let images = file("paired.cds"), let reports = file("paired.jsonl") else {
            throw DatasetError(path: path, kind: .io, reason: "has no paired.cds and paired.jsonl (the paired set of "
                               + "clipit synth); pass --images and --reports instead")
        }
        return (images, reports)
    }

    /// A dataset argument that may be a folder (its `split`.cds) or a `.cds` file.
    public static func datasetPath(_ fileOrFolder: String, split: String) throws -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: fileOrFolder, isDirectory: &isDirectory), isDirectory.boolValue else {
            return fileOrFolder
        }
        return try DataFolder(fileOrFolder).requiredSplit(split)
    }
}
