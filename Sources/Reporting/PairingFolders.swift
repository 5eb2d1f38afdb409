import Formats
import Foundation
import Retrieval

/// One pairing of a pairs directory (`clipit pair --out DIR/<name>`): the summary of each
/// split's pairs — score histogram over [−1, 1], label-match figures, report use.
public struct PairingResult: Sendable {
    /// The folder's name, e.g. "top1".
    public var name: String
    public var folder: String
    /// The strategy, as the summaries name it (the folder name when there are none).
    public var strategy: String
    /// One per split, in the summary file's order (computed ones: train, val, test, then
    /// the others by name).
    public var summaries: [PairsSummary]
    /// Whether the summaries were computed from the pairs files (no pairing-summary.json).
    public var computedFromPairsFiles: Bool

    public init(name: String, folder: String, strategy: String, summaries: [PairsSummary], computedFromPairsFiles: Bool) {
        self.name = name
        self.folder = folder
        self.strategy = strategy
        self.summaries = summaries
        self.computedFromPairsFiles = computedFromPairsFiles
    }

    /// The pairs file of `split` in this pairing's folder.
    public func pairsPath(split: String) -> String { folder + "/" + split + ".pairs.jsonl" }
}

/// Reading a pairs directory.
public enum PairingFolders {
    private struct SummaryFile: Decodable {
        var splits: [PairsSummary]
    }

    /// Every subfolder of `dir` that holds pairing-summary.json (written by `clipit
    /// pair`; snake_case or older camelCase keys), or, without it, <split>.pairs.jsonl
    /// files, whose summaries are then computed here (`PairsSummary`, 20 bins). Folders
    /// with neither are skipped.
    /// - Throws: `ReportingError` naming a file that cannot be read or parsed.
    public static func read(_ dir: String) throws -> [PairingResult] {
        let fm = FileManager.default
        let names: [String]
        do {
            names = try fm.contentsOfDirectory(atPath: dir).sorted()
        } catch {
            throw ReportingError(path: dir, "cannot list the pairs folder (\(error.localizedDescription)); pass the folder "
                                     + "holding one subfolder per pairing (clipit pair --out DIR/<strategy>)")
        }
        var result: [PairingResult] = []
        for name in names {
            let folder = dir + "/" + name
            let summaryPath = folder + "/pairing-summary.json"
            var summaries: [PairsSummary]
            var computed = false
            if fm.fileExists(atPath: summaryPath) {
                guard let data = fm.contents(atPath: summaryPath) else {
                    throw ReportingError(path: summaryPath, "cannot read the pairing summary; check that it is readable")
                }
                do {
                    summaries = try ProjectJSON.decoder().decode(SummaryFile.self, from: data).splits
                } catch {
                    throw ReportingError(path: summaryPath, "not a `clipit pair` summary (\(ReportingError.describe(error))); "
                                             + "rerun `clipit pair`, or delete the file to have the report summarise "
                                             + "the pairs files")
                }
            } else {
                let files = ((try? fm.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".pairs.jsonl") }
                guard !files.isEmpty else { continue }
                summaries = []
                for file in files {
                    do {
                        summaries.append(try PairsFile(contentsOf: URL(fileURLWithPath: folder + "/" + file)).summary())
                    } catch {
                        throw ReportingError(path: folder + "/" + file, "\(error)")
                    }
                }
                summaries.sort { splitRank($0.split) < splitRank($1.split) }
                computed = true
            }
            result.append(PairingResult(name: name, folder: folder, strategy: summaries.first?.strategy ?? name,
                                        summaries: summaries, computedFromPairsFiles: computed))
        }
        return result
    }

    /// train, val, test first, then any other split by name.
    private static func splitRank(_ split: String) -> (Int, String) {
        (["train", "val", "test"].firstIndex(of: split) ?? 3, split)
    }
}
