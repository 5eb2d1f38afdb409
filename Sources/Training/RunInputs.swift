import Formats
import Foundation

/// A file or folder a run was built from, recorded in its checkpoints (`clipit.inputs`) so
/// that a run folder can move: `path` is what the checkpoint's configuration holds.
public struct RecordedInput: Codable, Equatable, Sendable {
    /// The configuration key: `model.init_vision`, `model.init_text`, `data.train`, ….
    public var key: String
    /// Relative to the run folder when the input lies inside it, absolute otherwise.
    public var path: String
    /// The absolute path when the checkpoint was written.
    public var absolute: String
    /// Size and CRC-32 of the model input's files (weights, configuration, tokenizer),
    /// which recognise it; empty for data files.
    public var files: [InputFingerprint]
}

/// One file of a recorded input: its name inside the input (the file's own name for a
/// single file), size and CRC-32.
public struct InputFingerprint: Codable, Equatable, Sendable {
    public var name: String
    public var bytes: Int
    public var crc32: String
}

/// Recording a run's inputs when a checkpoint is written, and finding them again when it is
/// read from wherever the run folder now is.
///
/// Writing: every non-empty input path of the configuration (`keys`) becomes relative to the
/// run folder when it lies inside it, absolute otherwise; model inputs are fingerprinted once
/// per run. Reading: an input is looked for at its recorded path (a relative one against
/// the checkpoint's folder), then at its absolute path at writing time; a model input found
/// there must have the recorded fingerprints. Data inputs that are not found keep their
/// recorded path (commands that read them take other paths on the command line).
public enum RunInputs {
    /// The configuration keys of model inputs (fingerprinted, needed to rebuild the frozen
    /// weights, the teachers' soft targets and the retriever's targets).
    public static let modelKeys = towerKeys + ["distill.teacher", "distill.retriever"]
    /// The model inputs a trained model's frozen weights come from (all that evaluation needs).
    public static let towerKeys = ["model.init_vision", "model.init_text"]
    /// The configuration keys of data inputs.
    public static let dataKeys = ["data.train", "data.val", "data.reports", "data.train_pairs", "data.val_pairs",
                                  "data.unlabeled", "data.unlabeled_pairs"]

    static func keyPath(_ key: String) -> WritableKeyPath<TrainingConfig, String> {
        switch key {
        case "model.init_vision": return \.model.initVision
        case "model.init_text": return \.model.initText
        case "data.train": return \.data.train
        case "data.val": return \.data.val
        case "data.reports": return \.data.reports
        case "data.train_pairs": return \.data.trainPairs
        case "data.val_pairs": return \.data.valPairs
        case "data.unlabeled": return \.data.unlabeled
        case "data.unlabeled_pairs": return \.data.unlabeledPairs
        case "distill.teacher": return \.distill.teacher
        case "distill.retriever": return \.distill.retriever
        default: preconditionFailure("RunInputs: '\(key)' is not an input key")
        }
    }

    /// The inputs of `config` for a run writing into `runFolder`, model inputs fingerprinted.
    public static func record(_ config: TrainingConfig, runFolder: String) throws -> [RecordedInput] {
        let folder = absolutePath(runFolder)
        return try (modelKeys + dataKeys).compactMap { key in
            let given = config[keyPath: keyPath(key)]
            guard !given.isEmpty else { return nil }
            let absolute = absolutePath(given)
            let inside = absolute.hasPrefix(folder + "/")
            return RecordedInput(key: key, path: inside ? String(absolute.dropFirst(folder.count + 1)) : absolute,
                                 absolute: absolute, files: modelKeys.contains(key) ? try fingerprints(of: absolute) : [])
        }
    }

    /// `config` with each recorded input's path as the checkpoint stores it.
    public static func portable(_ config: TrainingConfig, inputs: [RecordedInput]) -> TrainingConfig {
        var c = config
        for input in inputs { c[keyPath: keyPath(input.key)] = input.path }
        return c
    }

    /// What reading a checkpoint found: the configuration with every input found pointing at
    /// it, and for each model input not found, or found changed, the error to give when
    /// it is needed.
    public struct Resolution: Sendable {
        public var config: TrainingConfig
        public var problems: [String: String]
    }

    /// Finds the recorded inputs of the checkpoint `checkpoint` (see the type's doc).
    public static func resolve(_ config: TrainingConfig, inputs: [RecordedInput], checkpoint: String) -> Resolution {
        let runFolder = ((absolutePath(checkpoint) as NSString).deletingLastPathComponent)
        var c = config, problems: [String: String] = [:]
        for input in inputs {
            let candidates = (input.path.hasPrefix("/") ? [input.path] : [runFolder + "/" + input.path]) + [input.absolute]
            guard let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
                if modelKeys.contains(input.key) {
                    problems[input.key] = "checkpoint '\(checkpoint)': \(input.key) '\(input.path)' not found (tried "
                        + Array(Set(candidates)).sorted().map { "'\($0)'" }.joined(separator: ", ")
                        + "); put it back or keep it beside the run folder, or train with train.save_frozen=true"
                }
                continue
            }
            c[keyPath: keyPath(input.key)] = found
            if !input.files.isEmpty, let now = try? fingerprints(of: found), now != input.files {
                let describe = { (files: [InputFingerprint]) in
                    files.map { "\($0.name) \($0.bytes) bytes crc32 \($0.crc32)" }.joined(separator: ", ")
                }
                problems[input.key] = "checkpoint '\(checkpoint)': \(input.key) '\(found)' is not what the run was "
                    + "trained with (recorded: \(describe(input.files)); now: \(describe(now))); restore the original"
            }
        }
        return Resolution(config: c, problems: problems)
    }

    /// An absolute, standardised path (relative paths against the current directory).
    static func absolutePath(_ path: String) -> String {
        let full = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        return (full as NSString).standardizingPath
    }

    /// Fingerprints of a model input: the file itself, or a folder's weights, configuration
    /// and tokenizer files (top level, sorted by name).
    static func fingerprints(of path: String) throws -> [InputFingerprint] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw TrainingError("model input '\(path)' does not exist")
        }
        guard isDirectory.boolValue else { return [try fingerprint(path, name: (path as NSString).lastPathComponent)] }
        let names = try FileManager.default.contentsOfDirectory(atPath: path).sorted().filter { name in
            ["safetensors", "json", "txt", "gz", "model"].contains((name as NSString).pathExtension.lowercased())
                && !name.hasPrefix(".")
        }
        return try names.map { try fingerprint(path + "/" + $0, name: $0) }
    }

    private static func fingerprint(_ path: String, name: String) throws -> InputFingerprint {
        let file = try MappedFile(path: path)
        return InputFingerprint(name: name, bytes: file.bytes.count, crc32: String(format: "%08x", Zlib.crc32(file.bytes)))
    }
}
