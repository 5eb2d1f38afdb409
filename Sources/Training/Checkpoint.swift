import Datasets
import Formats
import Foundation
import Import
import Model

/// Where a run stands after an optimiser step: everything besides the weights and the
/// optimiser's buffers that an exact resume needs. Every random choice of the run is
/// derived from (seed, epoch, sample index, step), so the data position is the whole of
/// the RNG state.
public struct TrainerState: Codable, Equatable, Sendable {
    /// Optimiser steps completed.
    public var step: Int
    /// The epoch and the index of the global batch the next step trains on.
    public var epoch: Int
    public var nextBatch: Int
    /// The best validation balanced accuracy so far and the step it was reached at.
    public var bestBalancedAccuracy: Double?
    public var bestStep: Int?
    /// Training images seen (all ranks), for throughput logs.
    public var imagesSeen: Int

    public init(step: Int = 0, epoch: Int = 0, nextBatch: Int = 0, bestBalancedAccuracy: Double? = nil,
                bestStep: Int? = nil, imagesSeen: Int = 0) {
        self.step = step
        self.epoch = epoch
        self.nextBatch = nextBatch
        self.bestBalancedAccuracy = bestBalancedAccuracy
        self.bestStep = bestStep
        self.imagesSeen = imagesSeen
    }
}

/// Checkpoint files: safetensors, written atomically by rank 0 (temporary file, fsync,
/// rename: `SafeTensorsWriter.write`).
///
/// Tensors:
/// - every trainable parameter under its model-contract name (`vision.…lora_A.weight`,
///   `heads.fusion.weight`, …), plus the frozen ones when `train.save_frozen` is set;
/// - `optimizer.<buffer>`: the optimiser's flat state (`exp_avg`, `exp_avg_sq` for Adam;
///   `momentum_buffer` for SGD), in the layout of the flat trainable buffer.
///
/// Metadata (strings): `clipit.format` = `clipit-checkpoint`, `clipit.version` = `1`,
/// `clipit.config` (the effective `TrainingConfig`, JSON), `clipit.state`
/// (`TrainerState`, JSON), `clipit.optimizer_step`, `clipit.classes` (class names,
/// JSON), `clipit.tokenizer` (the text encoding's state, when the model reads text: a
/// word tokenizer's vocabulary, or a CLIP BPE tokenizer's model folder with the path, size
/// and CRC-32 of each of its files, `CLIPTextEncoding`),
/// `clipit.frozen_checksum` (FNV-1a of the frozen buffer's bits, hex),
/// `clipit.frozen_saved` (`true`/`false`) and `clipit.inputs` (the run's input files and
/// folders, `RecordedInput`, JSON): the configuration stores them relative to the run
/// folder when inside it, absolute otherwise, so a moved run folder still finds them
/// (`RunInputs`).
///
/// Frozen weights are not stored by default: they are rebuilt from the seed and the
/// `model.init_*` files, and the checksum proves they came back bit-identical.
public enum Checkpoint {
    public static let formatName = "clipit-checkpoint"
    public static let formatVersion = "1"

    /// What a checkpoint describes besides its tensors.
    public struct Header: Sendable {
        public var config: TrainingConfig
        public var state: TrainerState
        public var classNames: [String]
        public var tokenizerState: String?
        public var optimizerStep: Int
        /// Model inputs (`model.init_*`) that were not found or have changed since the run,
        /// with the error to give when they are needed (`requireInputs`).
        public var inputProblems: [String: String] = [:]

        /// Throws the recorded problem of the first of `keys` that has one and is set in
        /// the configuration.
        public func requireInputs(_ keys: [String] = RunInputs.modelKeys) throws {
            for key in keys where !config[keyPath: RunInputs.keyPath(key)].isEmpty {
                if let problem = inputProblems[key] { throw TrainingError(problem) }
            }
        }
    }

    /// Writes `model`'s weights, `optimizer`'s state and the header to `path` atomically.
    /// Call on one rank only.
    /// `inputs` (`RunInputs.record`) are stored, and replace the configuration's paths.
    public static func write(to path: String, model: any TrainableModel, optimizer: (any Optimizer)?,
                             config: TrainingConfig, state: TrainerState, classNames: [String],
                             tokenizer: (any TextEncoding)?, inputs: [RecordedInput] = []) throws {
        let store = model.store
        var writer = SafeTensorsWriter()
        let saveFrozen = config.train.saveFrozen
        for p in store.parameters where p.isTrainable || saveFrozen {
            writer.add(p.name, shape: p.shape, pointer: UnsafePointer(p.value), count: p.count)
        }
        if let optimizer { writer.addOptimizerState(optimizer) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        writer.metadata = [
            "clipit.format": formatName,
            "clipit.version": formatVersion,
            "clipit.config": try RunInputs.portable(config, inputs: inputs).json(),
            "clipit.state": String(decoding: try encoder.encode(state), as: UTF8.self),
            "clipit.optimizer_step": String(optimizer?.stepCount ?? 0),
            "clipit.classes": String(decoding: try encoder.encode(classNames), as: UTF8.self),
            "clipit.frozen_checksum": hex(frozenChecksum(store)),
            "clipit.frozen_saved": saveFrozen ? "true" : "false",
        ]
        if let tokenizer { writer.metadata["clipit.tokenizer"] = tokenizer.stateJSON }
        if !inputs.isEmpty { writer.metadata["clipit.inputs"] = String(decoding: try encoder.encode(inputs), as: UTF8.self) }
        try writer.write(to: path)
    }

    /// Opens `path` and reads its header.
    public static func open(_ path: String) throws -> (file: SafeTensorsFile, header: Header) {
        let file = try SafeTensorsFile(path: path)
        let meta = file.metadata
        guard meta["clipit.format"] == formatName else {
            throw TrainingError("'\(path)' is not a clipit checkpoint (no clipit.format metadata); "
                                + "pass a file written by clipit train (best.safetensors or last.safetensors)")
        }
        guard meta["clipit.version"] == formatVersion else {
            throw TrainingError("checkpoint '\(path)' has version \(meta["clipit.version"] ?? "?"); this build reads version \(formatVersion)")
        }
        do {
            let config = try TrainingConfig.fromJSON(meta["clipit.config"] ?? "")
            let state = try JSONDecoder().decode(TrainerState.self, from: Data((meta["clipit.state"] ?? "").utf8))
            let classes = try JSONDecoder().decode([String].self, from: Data((meta["clipit.classes"] ?? "").utf8))
            let inputs = try meta["clipit.inputs"].map { try JSONDecoder().decode([RecordedInput].self, from: Data($0.utf8)) } ?? []
            let found = RunInputs.resolve(config, inputs: inputs, checkpoint: path)
            var header = Header(config: found.config, state: state, classNames: classes,
                                tokenizerState: meta["clipit.tokenizer"],
                                optimizerStep: Int(meta["clipit.optimizer_step"] ?? "0") ?? 0)
            header.inputProblems = found.problems
            if found.config.model.initText != config.model.initText, let state = header.tokenizerState {
                header.tokenizerState = CLIPTextEncoding.relocated(stateJSON: state, to: found.config.model.initText)
            }
            return (file, header)
        } catch let error as TrainingError {
            throw error
        } catch {
            throw TrainingError("checkpoint '\(path)': unreadable metadata (\(error))")
        }
    }

    /// Loads the weights of `file` into `model` (built from the checkpoint's config):
    /// every trainable parameter, the frozen ones when saved, and verifies that the frozen
    /// buffer matches the checksum recorded at save time.
    public static func loadWeights(_ file: SafeTensorsFile, into model: any TrainableModel) throws {
        let store = model.store
        let frozenSaved = file.metadata["clipit.frozen_saved"] == "true"
        var missing: [String] = []
        for p in store.parameters where p.isTrainable || frozenSaved {
            guard file.contains(p.name) else { missing.append(p.name); continue }
            let entry = try file.entry(p.name)
            guard entry.count == p.count else {
                throw TrainingError("checkpoint '\(file.path)': '\(p.name)' has shape \(entry.shape), the model \(p.shape)")
            }
            try file.read(p.name, into: p.value, count: p.count)
        }
        if !missing.isEmpty {
            throw TrainingError("checkpoint '\(file.path)' lacks \(missing.count) parameters of the model "
                                + "(first: \(missing.prefix(3).joined(separator: ", "))): it was written for a different model")
        }
        if let recorded = file.metadata["clipit.frozen_checksum"], recorded != hex(frozenChecksum(store)) {
            throw TrainingError("checkpoint '\(file.path)': the frozen weights rebuilt from the seed and model.init_* "
                                + "differ from those the run trained with (checksum \(hex(frozenChecksum(store))) vs \(recorded)); "
                                + "make the model.init_* files available unchanged, or train with train.save_frozen=true")
        }
    }

    /// Rebuilds the model a checkpoint was trained as, with its weights (training mode
    /// off). Collective-free: every rank may call it.
    public static func loadModel(_ path: String) throws -> (model: any TrainableModel, header: Header) {
        let (file, header) = try open(path)
        // The model.init_* files are read only when the checkpoint lacks frozen weights.
        let model = try makeModel(header.config, classes: header.classNames.count, loadingInitialWeights: false)
        if file.metadata["clipit.frozen_saved"] != "true" && model.store.frozenCount > 0 {
            try header.requireInputs(RunInputs.towerKeys)
            try loadInitialWeights(model.store, config: header.config.model)
        }
        try loadWeights(file, into: model)
        if let name = model.store.firstNonFiniteParameter() {
            throw TrainingError("checkpoint '\(path)': parameter '\(name)' holds non-finite values (NaN or ∞); the "
                                + "run that wrote it diverged — use an earlier checkpoint or retrain with a lower optim.lr")
        }
        model.isTraining = false
        return (model, header)
    }

    /// FNV-1a over the bits of the frozen buffer.
    static func frozenChecksum(_ store: ParameterStore) -> UInt64 { fnv1a(store.frozen) }

    static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
