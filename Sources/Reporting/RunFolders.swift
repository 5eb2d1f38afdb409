import Evaluation
import Formats
import Foundation

/// One run's test evaluation: the file `clipit eval --out` writes (test.json). Keys are
/// read in snake_case and in the camelCase of files written before (`ProjectJSON`).
public struct TestEvaluation: Decodable, Sendable {
    public var method: String?
    public var seed: Int?
    /// The checkpoint's optimiser step.
    public var step: Int?
    public var checkpoint: String?
    public var metrics: MetricsReport
    /// The text-only model's metrics and Ω, when the evaluation had --text-checkpoint.
    public var textMetrics: MetricsReport?
    public var omega: Double?

    public init(method: String?, seed: Int?, step: Int? = nil, checkpoint: String? = nil, metrics: MetricsReport,
                textMetrics: MetricsReport? = nil, omega: Double? = nil) {
        self.method = method
        self.seed = seed
        self.step = step
        self.checkpoint = checkpoint
        self.metrics = metrics
        self.textMetrics = textMetrics
        self.omega = omega
    }

    /// Reads a test.json.
    /// - Throws: `ReportingError` naming the file when it cannot be read or lacks the
    ///   metrics of a `clipit eval --out` file.
    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ReportingError(path: path, "cannot read the evaluation file; check that it is readable")
        }
        do {
            self = try ProjectJSON.decoder().decode(TestEvaluation.self, from: data)
        } catch {
            throw ReportingError(path: path, "not a `clipit eval --out` file (\(ReportingError.describe(error))); "
                                     + "rerun `clipit eval --out` for this run or move the file out of the runs folder")
        }
    }
}

/// One run folder of a runs directory: RUNS/<name>/test.json and, when present,
/// RUNS/<name>/metrics.jsonl.
public struct RunResult: Sendable {
    /// The folder's name, e.g. "clipit-seed2".
    public var name: String
    public var folder: String
    /// The seed: test.json's, else the folder name's "-seed<N>", else 0.
    public var seed: Int
    /// The method: test.json's, else the folder name.
    public var method: String
    public var test: TestEvaluation
    public var log: TrainingLog?

    public init(name: String, folder: String, seed: Int, method: String, test: TestEvaluation, log: TrainingLog?) {
        self.name = name
        self.folder = folder
        self.seed = seed
        self.method = method
        self.test = test
        self.log = log
    }
}

/// The runs of one method over seeds: run folders whose names differ only in a trailing
/// "-seed<N>" (clipit-seed0, clipit-seed1 form the group "clipit").
public struct MethodGroup: Sendable {
    public var name: String
    /// The method of the group's first run (folder-name order).
    public var method: String
    /// In seed order.
    public var runs: [RunResult]

    public init(name: String, method: String, runs: [RunResult]) {
        self.name = name
        self.method = method
        self.runs = runs
    }
}

/// Reading a runs directory into method groups, as `clipit report` groups them.
public enum RunFolders {
    /// "clipit-seed2" → ("clipit", 2); a name without the suffix is its own group.
    public static func splitSeed(_ name: String) -> (group: String, seed: Int?) {
        guard let range = name.range(of: "-seed", options: .backwards),
              let seed = Int(name[range.upperBound...]), !name[..<range.lowerBound].isEmpty else { return (name, nil) }
        return (String(name[..<range.lowerBound]), seed)
    }

    /// The groups of every subfolder of `runs` holding test.json: first the groups named
    /// in `order` (in that order), then the others in the order their first folder comes
    /// in sorted folder names; runs within a group in seed order. With `readLogs`, each
    /// run's metrics.jsonl is read too (nil where there is none).
    public static func read(_ runs: String, order: [String] = [], readLogs: Bool = false) throws -> [MethodGroup] {
        let fm = FileManager.default
        let names: [String]
        do {
            names = try fm.contentsOfDirectory(atPath: runs).sorted()
        } catch {
            throw ReportingError(path: runs, "cannot list the runs folder (\(error.localizedDescription)); "
                                     + "pass the folder whose subfolders are runs holding test.json")
        }
        var byName: [String: MethodGroup] = [:]
        var firstSeen: [String] = []
        for name in names {
            let folder = runs + "/" + name
            let path = folder + "/test.json"
            guard fm.fileExists(atPath: path) else { continue }
            let test = try TestEvaluation(path: path)
            let (group, suffixSeed) = splitSeed(name)
            let logPath = folder + "/metrics.jsonl"
            let log = readLogs && fm.fileExists(atPath: logPath) ? try TrainingLog(path: logPath) : nil
            let method = test.method ?? name
            let run = RunResult(name: name, folder: folder, seed: test.seed ?? suffixSeed ?? 0, method: method,
                                test: test, log: log)
            if byName[group] == nil {
                byName[group] = MethodGroup(name: group, method: method, runs: [])
                firstSeen.append(group)
            }
            byName[group]!.runs.append(run)
        }
        let first = order.filter { byName[$0] != nil }
        return (first + firstSeen.filter { !first.contains($0) }).map { name in
            var group = byName[name]!
            group.runs.sort { $0.seed < $1.seed }
            return group
        }
    }
}
