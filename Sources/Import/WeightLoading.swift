import Formats
import Model

/// Everything that kept a set of weights from loading, reported at once.
public struct WeightLoadingError: Error, CustomStringConvertible {
    public var path: String
    /// Parameters the file does not have (internal names → expected file names).
    public var missing: [String]
    /// File tensors under the file prefix that no parameter uses.
    public var unexpected: [String]
    /// "name: file shape […] vs parameter shape […]".
    public var shapeMismatches: [String]

    public var description: String {
        var lines = ["cannot load weights from '\(path)':"]
        if !missing.isEmpty { lines.append("  missing (\(missing.count)): " + missing.joined(separator: ", ")) }
        if !unexpected.isEmpty {
            lines.append("  unexpected (\(unexpected.count)): " + unexpected.joined(separator: ", "))
        }
        if !shapeMismatches.isEmpty {
            lines.append("  shape mismatches (\(shapeMismatches.count)): " + shapeMismatches.joined(separator: "; "))
        }
        lines.append("  hint: check the tower prefix / filePrefix, the encoder config (width, depth, "
                     + "patch size, LoRA rank and targets) and that the file was exported with the "
                     + "names of docs/model-contract.md")
        return lines.joined(separator: "\n")
    }
}

/// What `ParameterStore.load` did.
public struct WeightLoadingReport: Sendable {
    /// Parameters filled from the file.
    public var loaded: [String] = []
    /// Parameters absent from the file but allowed to be (they keep their initial values).
    public var keptInitial: [String] = []
    /// File tensors ignored on request.
    public var ignored: [String] = []
}

/// Whether `name` is a LoRA adapter parameter (absent from pretrained base checkpoints).
public func isLoRAParameterName(_ name: String) -> Bool {
    name.contains(".lora_A.") || name.contains(".lora_B.") || name.hasSuffix(".lora_embedding_A")
        || name.hasSuffix(".lora_embedding_B")
}

extension ParameterStore {
    /// Loads every parameter whose name starts with `prefix` from `file`. The parameter
    /// `prefix + rest` reads the tensor `filePrefix + rest` (`filePrefix` defaults to
    /// `prefix`, for files that use our names; pass "" for a bare timm/HF checkpoint).
    ///
    /// Shapes must match up to size-1 dimensions (`(1, 1, E)` ≡ `(E)`). A mismatched
    /// tensor may be converted by `adapt(parameter, fileShape, fileValues)` returning the
    /// parameter's values (for example a resampled position embedding) or nil. All
    /// missing, unexpected and mismatched tensors are collected and thrown together as
    /// one `WeightLoadingError`; nothing is partially loaded in that case.
    @discardableResult
    public func load(from file: SafeTensorsFile, prefix: String, filePrefix: String? = nil,
                     allowMissing: (String) -> Bool = isLoRAParameterName,
                     ignoreUnexpected: (String) -> Bool = { _ in false },
                     adapt: ((Parameter, [Int], [Float]) -> [Float]?)? = nil) throws -> WeightLoadingReport {
        precondition(isAllocated, "ParameterStore.load: allocate the store before loading weights")
        let filePrefix = filePrefix ?? prefix
        var error = WeightLoadingError(path: file.path, missing: [], unexpected: [], shapeMismatches: [])
        var report = WeightLoadingReport()
        var plan: [(Parameter, String, [Float]?)] = []   // nil: read directly
        var used = Set<String>()
        for p in parameters where p.name.hasPrefix(prefix) {
            let key = filePrefix + p.name.dropFirst(prefix.count)
            guard file.contains(key) else {
                if allowMissing(p.name) { report.keptInitial.append(p.name) } else {
                    error.missing.append(key == p.name ? p.name : "\(p.name) (file: \(key))")
                }
                continue
            }
            used.insert(key)
            let entry = try file.entry(key)
            if entry.shape.filter({ $0 != 1 }) == p.shape.filter({ $0 != 1 }) {
                plan.append((p, key, nil))
            } else if let adapt, let values = adapt(p, entry.shape, try file.floats(key)),
                      values.count == p.count {
                plan.append((p, key, values))
            } else {
                error.shapeMismatches.append("\(key): file shape \(entry.shape) vs parameter shape \(p.shape)")
            }
        }
        for key in file.names where key.hasPrefix(filePrefix) && !used.contains(key) {
            if ignoreUnexpected(key) { report.ignored.append(key) } else { error.unexpected.append(key) }
        }
        if !error.missing.isEmpty || !error.unexpected.isEmpty || !error.shapeMismatches.isEmpty {
            throw error
        }
        for (p, key, values) in plan {
            if let values {
                values.withUnsafeBufferPointer { p.value.update(from: $0.baseAddress!, count: p.count) }
            } else {
                try file.read(key, into: p.value, count: p.count)
            }
            report.loaded.append(p.name)
        }
        return report
    }
}

extension VisionTransformer {
    /// Loads this tower's weights (see `ParameterStore.load`). A `pos_embed` trained at a
    /// different square grid is resampled with `interpolatePositionEmbedding` (`resampling`,
    /// by default timm's bicubic with antialiasing); its prefix rows (class and register
    /// tokens, absent with `noEmbedClass`) are kept.
    @discardableResult
    public func load(from file: SafeTensorsFile, store: ParameterStore, filePrefix: String? = nil,
                     allowMissing: (String) -> Bool = isLoRAParameterName,
                     ignoreUnexpected: (String) -> Bool = { _ in false },
                     resampling: GridResampling = .bicubicAntialiased) throws -> WeightLoadingReport {
        let pos = positionEmbedding, E = config.width, grid = config.gridSize, prefixRows = config.positionPrefixRows
        return try store.load(from: file, prefix: prefix, filePrefix: filePrefix,
                              allowMissing: allowMissing, ignoreUnexpected: ignoreUnexpected) { p, shape, values in
            guard p === pos, shape.last == E, values.count % E == 0 else { return nil }
            guard let oldGrid = squareGrid(rows: values.count / E - prefixRows) else { return nil }
            return interpolatePositionEmbedding(values, prefixTokens: prefixRows, oldGrid: (oldGrid, oldGrid),
                                                newGrid: (grid, grid), width: E, mode: resampling)
        }
    }
}

/// The side of a square grid of `rows` cells, or nil when `rows` is not a positive square.
func squareGrid(rows: Int) -> Int? {
    guard rows > 0 else { return nil }
    let side = Int(Double(rows).squareRoot().rounded())
    return side * side == rows ? side : nil
}

extension TextTransformer {
    /// Loads this tower's weights (see `ParameterStore.load`).
    @discardableResult
    public func load(from file: SafeTensorsFile, store: ParameterStore, filePrefix: String? = nil,
                     allowMissing: (String) -> Bool = isLoRAParameterName,
                     ignoreUnexpected: (String) -> Bool = { _ in false }) throws -> WeightLoadingReport {
        try store.load(from: file, prefix: prefix, filePrefix: filePrefix, allowMissing: allowMissing,
                       ignoreUnexpected: ignoreUnexpected)
    }
}

extension TowerModel {
    /// Loads every parameter found in `file` under its contract name (towers, LoRA factors,
    /// heads). Parameters absent from the file keep their values if `allowMissing` says so
    /// (by default: LoRA factors and heads, which a pretrained checkpoint lacks); tensors of
    /// the file that are not parameters are ignored if `ignoreUnexpected` says so.
    @discardableResult
    public func load(from file: SafeTensorsFile,
                     allowMissing: (String) -> Bool = { isLoRAParameterName($0) || $0.hasPrefix("heads.") },
                     ignoreUnexpected: (String) -> Bool = { _ in false }) throws -> WeightLoadingReport {
        try store.load(from: file, prefix: "", allowMissing: allowMissing, ignoreUnexpected: ignoreUnexpected)
    }
}
