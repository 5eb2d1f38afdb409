import Formats
import Model

/// Where one internal parameter's values come from in an upstream checkpoint.
public enum TensorSource: Equatable, Sendable {
    /// The tensor as stored; shapes must agree up to size-1 dimensions (`(E)` ≡ `(1, 1, E)`).
    case tensor(String)
    /// The concatenation along dimension 0 (HF `q_proj`, `k_proj`, `v_proj` → fused `qkv`).
    case concatenated([String])
    /// Part `part` of `parts` equal slices along dimension 0 (open_clip's fused `in_proj`
    /// → `q_proj`, `k_proj`, `v_proj`).
    case slice(String, part: Int, parts: Int)
    /// The transpose of a 2-D tensor (open_clip's `proj (width, out)` → Linear `(out, width)`).
    case transposed(String)
    /// A position embedding `(1, prefixRows + g², E)` whose square patch grid g (read from the
    /// file) is resampled to the parameter's square grid with `interpolatePositionEmbedding` —
    /// what timm does for `dynamic_img_size` or when loading a checkpoint at another image size.
    /// The identity when the grids agree.
    case resampledGrid(String, prefixRows: Int, mode: GridResampling)

    /// The upstream tensors read.
    public var keys: [String] {
        switch self {
        case .tensor(let k), .slice(let k, _, _), .transposed(let k), .resampledGrid(let k, _, _): return [k]
        case .concatenated(let ks): return ks
        }
    }
}

/// Everything that kept an upstream checkpoint from loading, reported at once.
public struct WeightImportError: Error, CustomStringConvertible {
    public var path: String
    public var family: String
    /// Upstream tensors the model needs and the file lacks ("upstream ← internal").
    public var missing: [String]
    /// File tensors no parameter uses (and not known to be irrelevant, like `logit_scale`).
    public var unexpected: [String]
    /// "upstream: file shape […] gives […], parameter internal needs […]".
    public var shapeMismatches: [String]
    /// Architecture problems found before any tensor was read.
    public var problems: [String]

    public init(path: String, family: String, missing: [String] = [], unexpected: [String] = [],
                shapeMismatches: [String] = [], problems: [String] = []) {
        self.path = path
        self.family = family
        self.missing = missing
        self.unexpected = unexpected
        self.shapeMismatches = shapeMismatches
        self.problems = problems
    }

    public var isEmpty: Bool { missing.isEmpty && unexpected.isEmpty && shapeMismatches.isEmpty && problems.isEmpty }

    public var description: String {
        var lines = ["cannot import \(family) model '\(path)':"]
        for p in problems { lines.append("  " + p) }
        if !missing.isEmpty { lines.append("  missing (\(missing.count)): " + missing.joined(separator: ", ")) }
        if !unexpected.isEmpty { lines.append("  unexpected (\(unexpected.count)): " + unexpected.joined(separator: ", ")) }
        if !shapeMismatches.isEmpty {
            lines.append("  shape mismatches (\(shapeMismatches.count)): " + shapeMismatches.joined(separator: "; "))
        }
        lines.append("  hint: the architecture is read from the folder's config (config.json / "
                     + "open_clip_config.json); check that the weights belong to it and that the "
                     + "family was detected correctly (docs/running-the-paper-setup.md)")
        return lines.joined(separator: "\n")
    }
}

/// What an import did.
public struct ImportReport: Sendable {
    /// Internal names filled from the file.
    public var loaded: [String] = []
    /// Internal names absent upstream that keep their initial values (LoRA factors).
    public var keptInitial: [String] = []
    /// File tensors deliberately not used (`logit_scale`, position-id buffers, classifier heads).
    public var ignored: [String] = []
    /// Position embeddings resampled to the tower's grid ("internal: g×g → n×n grid").
    public var resampled: [String] = []
}

/// A family's translation from our parameter names to upstream tensors.
public struct WeightMapping {
    /// Upstream source of an internal name; nil: the name has no upstream counterpart.
    public var source: (String) -> TensorSource?
    /// File tensors that are known and deliberately unused.
    public var ignore: (String) -> Bool

    public init(source: @escaping (String) -> TensorSource?, ignore: @escaping (String) -> Bool) {
        self.source = source
        self.ignore = ignore
    }
}

/// Shape of a source once transformed for `parameter`, from the file's header only.
private func sourceShape(_ source: TensorSource, _ file: SafeTensorsFile, for parameter: Parameter) throws -> [Int] {
    switch source {
    case .tensor(let k): return try file.info(k).shape
    case .concatenated(let ks):
        var shape = try file.info(ks[0]).shape
        guard !shape.isEmpty else { return shape }
        for k in ks.dropFirst() {
            let s = try file.info(k).shape
            guard s.count == shape.count, Array(s.dropFirst()) == Array(shape.dropFirst()) else { return [-1] }
            shape[0] += s[0]
        }
        return shape
    case .slice(let k, _, let parts):
        var shape = try file.info(k).shape
        guard !shape.isEmpty, shape[0] % parts == 0 else { return [-1] }
        shape[0] /= parts
        return shape
    case .transposed(let k):
        let s = try file.info(k).shape
        return s.count == 2 ? [s[1], s[0]] : [-1]
    case .resampledGrid(let k, let prefixRows, _):
        guard let (_, width) = try resampledGridSource(k, prefixRows: prefixRows, file),
              let grid = targetGrid(parameter, prefixRows: prefixRows) else { return try file.info(k).shape }
        return [1, prefixRows + grid * grid, width]
    }
}

/// The square patch grid side and the width of a stored position embedding `(…, rows, E)`
/// with `prefixRows` leading non-grid rows; nil when its rows are not prefix + a square.
private func resampledGridSource(_ key: String, prefixRows: Int, _ file: SafeTensorsFile) throws -> (Int, Int)? {
    let s = try file.info(key).shape
    guard s.count >= 2, s.dropLast(2).allSatisfy({ $0 == 1 }), let side = squareGrid(rows: s[s.count - 2] - prefixRows)
    else { return nil }
    return (side, s[s.count - 1])
}

/// The square grid side of a position-embedding parameter `(1, prefixRows + n², E)`.
private func targetGrid(_ p: Parameter, prefixRows: Int) -> Int? {
    p.shape.count >= 2 ? squareGrid(rows: p.shape[p.shape.count - 2] - prefixRows) : nil
}

private func readSource(_ source: TensorSource, _ file: SafeTensorsFile, into p: Parameter) throws {
    switch source {
    case .tensor(let k):
        try file.read(k, into: p.value, count: p.count)
    case .concatenated(let ks):
        var offset = 0
        for k in ks {
            let v = try file.floats(k)
            (p.value + offset).update(from: v, count: v.count)
            offset += v.count
        }
    case .slice(let k, let part, let parts):
        let v = try file.floats(k)
        let n = v.count / parts
        v.withUnsafeBufferPointer { p.value.update(from: $0.baseAddress! + part * n, count: n) }
    case .transposed(let k):
        let v = try file.floats(k), s = try file.info(k).shape
        let rows = s[0], cols = s[1]        // file (rows, cols) → parameter (cols, rows)
        for r in 0..<rows { for c in 0..<cols { p.value[c * rows + r] = v[r * cols + c] } }
    case .resampledGrid(let k, let prefixRows, let mode):
        // Both grids were checked by sourceShape.
        let (side, width) = try resampledGridSource(k, prefixRows: prefixRows, file)!
        let grid = targetGrid(p, prefixRows: prefixRows)!
        let v = interpolatePositionEmbedding(try file.floats(k), prefixTokens: prefixRows, oldGrid: (side, side),
                                             newGrid: (grid, grid), width: width, mode: mode)
        p.value.update(from: v, count: p.count)
    }
}

extension ParameterStore {
    /// Loads every parameter whose name starts with one of `prefixes` from an upstream
    /// checkpoint through `mapping`. `allNames` are the internal names of the complete model
    /// the file describes (both towers even when one is loaded): a file tensor none of them
    /// uses, and that the mapping does not ignore, is reported as unexpected. All missing,
    /// unexpected and mismatched tensors are collected and thrown as one `WeightImportError`;
    /// nothing is loaded in that case. Parameters for which `allowMissing` is true (LoRA
    /// factors by default) keep their initial values when the file lacks them.
    @discardableResult
    public func importWeights(from file: SafeTensorsFile, family: String, mapping: WeightMapping,
                              prefixes: [String], allNames: [String],
                              allowMissing: (String) -> Bool = isLoRAParameterName) throws -> ImportReport {
        precondition(isAllocated, "ParameterStore.importWeights: allocate the store first")
        var error = WeightImportError(path: file.path, family: family)
        var report = ImportReport()
        var plan: [(Parameter, TensorSource)] = []
        for p in parameters where prefixes.contains(where: { p.name.hasPrefix($0) }) {
            guard let source = mapping.source(p.name) else {
                if allowMissing(p.name) { report.keptInitial.append(p.name) } else {
                    error.missing.append("(no upstream name) ← \(p.name)")
                }
                continue
            }
            let absent = source.keys.filter { !file.contains($0) }
            if !absent.isEmpty && allowMissing(p.name) {
                report.keptInitial.append(p.name)
                continue
            }
            if !absent.isEmpty {
                error.missing.append(contentsOf: absent.map { "\($0) ← \(p.name)" })
                continue
            }
            let shape = try sourceShape(source, file, for: p)
            if shape.filter({ $0 != 1 }) == p.shape.filter({ $0 != 1 }) {
                plan.append((p, source))
            } else {
                let shapes = try source.keys.map { "\(try file.info($0).shape)" }.joined(separator: " + ")
                error.shapeMismatches.append("\(source.keys.joined(separator: " + ")): file shape \(shapes) "
                                             + "vs parameter \(p.name) \(p.shape)")
            }
        }
        var used = Set<String>()
        for name in allNames { if let s = mapping.source(name) { used.formUnion(s.keys) } }
        for key in file.names where !used.contains(key) {
            if mapping.ignore(key) { report.ignored.append(key) } else { error.unexpected.append(key) }
        }
        guard error.isEmpty else { throw error }
        for (p, source) in plan {
            try readSource(source, file, into: p)
            report.loaded.append(p.name)
            if case .resampledGrid(let k, let prefixRows, let mode) = source,
               let (side, _) = try resampledGridSource(k, prefixRows: prefixRows, file),
               let grid = targetGrid(p, prefixRows: prefixRows), side != grid {
                report.resampled.append("\(p.name): \(side)×\(side) → \(grid)×\(grid) grid (\(mode.rawValue))")
            }
        }
        return report
    }
}
