// Export of trained LoRA adapters as Hugging Face PEFT adapter folders, and of a merged
// model with the LoRA updates folded into the base weights (docs/importing.md).
//
// Internal names (docs/model-contract.md) map to upstream module paths per tower:
//   vision.<P>                 → <P>                         (timm VisionTransformer)
//   text.text_projection.<S>   → text_projection.<S>         (HF CLIPTextModelWithProjection)
//   text.<P>                   → text_model.<P>
// and a LoRA factor of module P to the PEFT key `base_model.model.<upstream P>.<factor>`
// with factor `lora_A.weight`, `lora_B.weight`, `lora_embedding_A` or `lora_embedding_B`
// (what `peft.get_peft_model_state_dict` saves for the default adapter).
import Formats
import Foundation
import Kernels
import Model

/// A named float32 tensor held in memory.
public struct NamedTensor: Equatable, Sendable {
    public var shape: [Int]
    public var values: [Float]
    public init(shape: [Int], values: [Float]) {
        precondition(shape.reduce(1, *) == values.count, "NamedTensor: \(values.count) values for shape \(shape)")
        self.shape = shape
        self.values = values
    }
}

/// The towers that can carry LoRA, with their upstream libraries.
public enum PEFTTower: String, CaseIterable, Sendable {
    case vision
    case text

    /// Prefix of the tower's internal parameter names.
    public var prefix: String { rawValue + "." }

    /// The class PEFT wraps (recorded in the adapter config's `auto_mapping`).
    var upstreamClass: (name: String, library: String) {
        switch self {
        case .vision: return ("VisionTransformer", "timm.models.vision_transformer")
        case .text: return ("CLIPTextModelWithProjection", "transformers.models.clip.modeling_clip")
        }
    }
}

/// An export could not be made or an adapter folder could not be read back.
public struct PEFTExportError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Mapping between internal parameter names and upstream / PEFT names.
public enum PEFTNames {
    /// The upstream name of an internal name and its tower; nil for names outside the towers
    /// (heads, fixtures' inputs and outputs).
    public static func upstream(_ name: String) -> (tower: PEFTTower, name: String)? {
        if name.hasPrefix("vision.") { return (.vision, String(name.dropFirst("vision.".count))) }
        if name.hasPrefix("text.") {
            let rest = name.dropFirst("text.".count)
            if rest == "text_projection" || rest.hasPrefix("text_projection.") { return (.text, String(rest)) }
            return (.text, "text_model." + rest)
        }
        return nil
    }

    /// The internal name of an upstream name of `tower` (inverse of `upstream`).
    public static func internalName(tower: PEFTTower, upstream name: String) -> String {
        switch tower {
        case .vision: return "vision." + name
        case .text:
            if name.hasPrefix("text_model.") { return "text." + name.dropFirst("text_model.".count) }
            return "text." + name
        }
    }

    static let peftPrefix = "base_model.model."
    static let factorSuffixes = [".lora_A.weight", ".lora_B.weight", ".lora_embedding_A", ".lora_embedding_B"]

    /// Splits a LoRA parameter name into its module path and factor suffix.
    static func splitFactor(_ name: String) -> (module: String, suffix: String)? {
        for suffix in factorSuffixes where name.hasSuffix(suffix) {
            return (String(name.dropLast(suffix.count)), suffix)
        }
        return nil
    }

    /// The PEFT adapter key of an internal LoRA factor name, with its tower.
    public static func adapterKey(_ name: String) -> (tower: PEFTTower, key: String)? {
        guard let (module, suffix) = splitFactor(name), let (tower, path) = upstream(module) else { return nil }
        return (tower, peftPrefix + path + suffix)
    }

    /// The internal name of a PEFT adapter key of `tower`.
    public static func internalName(tower: PEFTTower, adapterKey key: String) -> String? {
        guard key.hasPrefix(peftPrefix) else { return nil }
        return internalName(tower: tower, upstream: String(key.dropFirst(peftPrefix.count)))
    }
}

/// LoRA hyper-parameters that are not recoverable from the factors' shapes.
public struct AdapterSettings: Equatable, Sendable {
    public var alpha: Float
    public var dropout: Float
    public init(alpha: Float, dropout: Float = 0) {
        self.alpha = alpha
        self.dropout = dropout
    }
}

/// What `PEFTExporter.export` wrote.
public struct PEFTExportReport: Sendable {
    /// Per tower with LoRA: the adapter folder, rank, and the upstream target modules.
    public var adapters: [(tower: PEFTTower, directory: String, rank: Int, targetModules: [String])] = []
    /// `heads.safetensors`, when the source had heads.
    public var headsPath: String?
    public var headCount = 0
    /// `merged.safetensors`, when asked for.
    public var mergedPath: String?
    public var mergedCount = 0
}

public enum PEFTExporter {
    /// Every parameter of a store (frozen and trainable), by internal name.
    public static func tensors(from store: ParameterStore) -> [String: NamedTensor] {
        var out: [String: NamedTensor] = [:]
        for p in store.parameters {
            out[p.name] = NamedTensor(shape: p.shape, values: Array(UnsafeBufferPointer(start: p.value, count: p.count)))
        }
        return out
    }

    /// Every float tensor of a safetensors file named like a model parameter (`vision.`,
    /// `text.`, `heads.`); other entries (a checkpoint's optimiser state, a fixture's
    /// inputs and outputs) are left out.
    public static func tensors(from file: SafeTensorsFile) throws -> [String: NamedTensor] {
        var out: [String: NamedTensor] = [:]
        for name in file.names where name.hasPrefix("vision.") || name.hasPrefix("text.") || name.hasPrefix("heads.") {
            out[name] = NamedTensor(shape: try file.info(name).shape, values: try file.floats(name))
        }
        return out
    }

    /// The LoRA modules of `tower`: internal module path → (A name, B name, embedding?).
    static func loraModules(_ tensors: [String: NamedTensor], tower: PEFTTower) throws
        -> [(module: String, a: String, b: String, embedding: Bool)] {
        var modules: [(String, String, String, Bool)] = []
        for name in tensors.keys.sorted() where name.hasPrefix(tower.prefix) {
            guard let (module, suffix) = PEFTNames.splitFactor(name) else { continue }
            let embedding: Bool
            switch suffix {
            case ".lora_A.weight": embedding = false
            case ".lora_embedding_A": embedding = true
            default: continue
            }
            let b = module + (embedding ? ".lora_embedding_B" : ".lora_B.weight")
            guard tensors[b] != nil else { throw PEFTExportError("'\(name)' has no matching '\(b)'") }
            modules.append((module, name, b, embedding))
        }
        for name in tensors.keys where name.hasPrefix(tower.prefix) {
            if let (module, suffix) = PEFTNames.splitFactor(name), suffix == ".lora_B.weight" || suffix == ".lora_embedding_B",
               !modules.contains(where: { $0.0 == module }) {
                throw PEFTExportError("'\(name)' has no matching LoRA A factor")
            }
        }
        return modules
    }

    /// The rank of a module: A is (r, …) for a Linear/Conv, (r, V) for an Embedding.
    static func rank(_ tensors: [String: NamedTensor], _ a: String) -> Int { tensors[a]!.shape[0] }

    /// Writes, into `directory`:
    /// - `<tower>/adapter_config.json` + `<tower>/adapter_model.safetensors` for each tower
    ///   with LoRA factors (PEFT LoRA adapter of the upstream model);
    /// - `heads.safetensors`: the `heads.*` tensors under their internal names;
    /// - with `merged`, `merged.safetensors`: every tower and head tensor with LoRA folded
    ///   into the base weights and the factors removed, internal names.
    ///
    /// - Parameters:
    ///   - settings: α and dropout per tower (required for each tower with LoRA).
    ///   - baseModels: `base_model_name_or_path` per tower (null when absent).
    @discardableResult
    public static func export(_ tensors: [String: NamedTensor], settings: [PEFTTower: AdapterSettings],
                              to directory: String, merged: Bool = false,
                              baseModels: [PEFTTower: String] = [:]) throws -> PEFTExportReport {
        var report = PEFTExportReport()
        try makeDirectory(directory)
        for tower in PEFTTower.allCases {
            let modules = try loraModules(tensors, tower: tower)
            guard !modules.isEmpty else { continue }
            guard let setting = settings[tower] else {
                throw PEFTExportError("the \(tower.rawValue) tower has LoRA factors but no α was given; pass the LoRA alpha the model was trained with")
            }
            let ranks = Set(modules.map { rank(tensors, $0.a) })
            guard ranks.count == 1, let r = ranks.first else {
                throw PEFTExportError("the \(tower.rawValue) tower mixes LoRA ranks \(ranks.sorted()); one rank per tower is supported")
            }
            var writer = SafeTensorsWriter()
            var targets: [String] = []
            for module in modules {
                for name in [module.a, module.b] {
                    let (_, key) = PEFTNames.adapterKey(name)!
                    writer.add(key, shape: tensors[name]!.shape, floats: tensors[name]!.values)
                }
                targets.append(PEFTNames.upstream(module.module)!.name)
            }
            let towerDirectory = directory + "/" + tower.rawValue
            try makeDirectory(towerDirectory)
            try writer.write(to: towerDirectory + "/adapter_model.safetensors")
            try writeJSON(adapterConfig(tower: tower, rank: r, settings: setting, targets: targets.sorted(),
                                        baseModel: baseModels[tower]),
                          to: towerDirectory + "/adapter_config.json")
            report.adapters.append((tower, towerDirectory, r, targets.sorted()))
        }
        let heads = tensors.keys.filter { $0.hasPrefix("heads.") }.sorted()
        if !heads.isEmpty {
            var writer = SafeTensorsWriter()
            for name in heads { writer.add(name, shape: tensors[name]!.shape, floats: tensors[name]!.values) }
            report.headsPath = directory + "/heads.safetensors"
            try writer.write(to: report.headsPath!)
            report.headCount = heads.count
        }
        if merged {
            let folded = try mergedTensors(tensors, settings: settings)
            var writer = SafeTensorsWriter(metadata: ["clipit.merged": "lora folded into base weights; internal names (docs/model-contract.md)"])
            for name in folded.keys.sorted() { writer.add(name, shape: folded[name]!.shape, floats: folded[name]!.values) }
            report.mergedPath = directory + "/merged.safetensors"
            try writer.write(to: report.mergedPath!)
            report.mergedCount = folded.count
        }
        return report
    }

    /// The tensors with every LoRA update folded into its base weight and the factors
    /// removed:
    /// - Linear / Conv2d (weight viewed as (out, in)): W ← W + (α/r)·B A;
    /// - Embedding (V, D): W ← W + (α/r)·(B A)ᵀ = W + (α/r)·Aᵀ Bᵀ,
    /// computed with the same GEMMs as `Linear.mergeLoRA` / `TokenEmbedding.mergeLoRA`.
    public static func mergedTensors(_ tensors: [String: NamedTensor],
                                     settings: [PEFTTower: AdapterSettings]) throws -> [String: NamedTensor] {
        var out = tensors
        for tower in PEFTTower.allCases {
            let modules = try loraModules(tensors, tower: tower)
            guard !modules.isEmpty else { continue }
            guard let setting = settings[tower] else {
                throw PEFTExportError("the \(tower.rawValue) tower has LoRA factors but no α was given")
            }
            for module in modules {
                let weightName = module.module + ".weight"
                guard var weight = out[weightName] else {
                    throw PEFTExportError("cannot merge '\(module.module)': its base weight '\(weightName)' is not in the source; export from a checkpoint that holds the frozen weights (train.save_frozen) or a full parameter file")
                }
                let a = tensors[module.a]!, b = tensors[module.b]!
                let r = a.shape[0], s = setting.alpha / Float(r)
                if module.embedding {
                    let (v, d) = (a.shape[1], b.shape[0])
                    guard weight.shape == [v, d], b.shape == [d, r] else {
                        throw PEFTExportError("'\(module.module)': embedding \(weight.shape) does not fit A \(a.shape) and B \(b.shape)")
                    }
                    weight.values.withUnsafeMutableBufferPointer { w in
                        gemm(.transposed, .transposed, m: v, n: d, k: r, alpha: s, a: a.values, lda: v,
                             b: b.values, ldb: r, beta: 1, c: w.baseAddress!, ldc: d)
                    }
                } else {
                    let outFeatures = b.shape[0], inFeatures = a.values.count / r
                    guard weight.values.count == outFeatures * inFeatures, b.values.count == outFeatures * r else {
                        throw PEFTExportError("'\(module.module)': weight \(weight.shape) does not fit A \(a.shape) and B \(b.shape)")
                    }
                    weight.values.withUnsafeMutableBufferPointer { w in
                        gemm(.none, .none, m: outFeatures, n: inFeatures, k: r, alpha: s, a: b.values, lda: r,
                             b: a.values, ldb: inFeatures, beta: 1, c: w.baseAddress!, ldc: inFeatures)
                    }
                }
                out[weightName] = weight
                out[module.a] = nil
                out[module.b] = nil
            }
        }
        return out
    }

    static func adapterConfig(tower: PEFTTower, rank: Int, settings: AdapterSettings, targets: [String],
                              baseModel: String?) -> [String: Any] {
        [
            "peft_type": "LORA",
            "task_type": NSNull(),
            "base_model_name_or_path": baseModel.map { $0 as Any } ?? NSNull(),
            "auto_mapping": ["base_model_class": tower.upstreamClass.name, "parent_library": tower.upstreamClass.library],
            "r": rank,
            "lora_alpha": jsonNumber(settings.alpha),
            "lora_dropout": jsonNumber(settings.dropout),
            "target_modules": targets,
            "modules_to_save": NSNull(),
            "bias": "none",
            "fan_in_fan_out": false,
            "inference_mode": true,
            "init_lora_weights": true,
            "use_rslora": false,
            "use_dora": false,
            "layers_to_transform": NSNull(),
            "layers_pattern": NSNull(),
            "rank_pattern": [String: Any](),
            "alpha_pattern": [String: Any](),
            "revision": NSNull(),
        ]
    }

    /// A Float as the shortest decimal that reads back to it (8 → 8, 0.1 → 0.1).
    static func jsonNumber(_ value: Float) -> Any {
        if value == value.rounded(), abs(value) < 1e9 { return Int(value) }
        return Double(String(value))!
    }

    // MARK: Reading back

    /// Reads a PEFT LoRA adapter folder written for `tower` (by this exporter or by PEFT
    /// with the same module paths): the factors under internal names and the settings.
    public static func readAdapter(directory: String, tower: PEFTTower) throws
        -> (tensors: [String: NamedTensor], rank: Int, settings: AdapterSettings, targetModules: [String]) {
        let configPath = directory + "/adapter_config.json"
        guard let data = FileManager.default.contents(atPath: configPath),
              let config = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw PEFTExportError("'\(configPath)' is missing or not a JSON object")
        }
        guard config["peft_type"] as? String == "LORA", let r = config["r"] as? Int,
              let alpha = (config["lora_alpha"] as? NSNumber)?.floatValue else {
            throw PEFTExportError("'\(configPath)' is not a LoRA adapter config (peft_type LORA, r, lora_alpha)")
        }
        let dropout = (config["lora_dropout"] as? NSNumber)?.floatValue ?? 0
        let targets = config["target_modules"] as? [String] ?? []
        let file = try SafeTensorsFile(path: directory + "/adapter_model.safetensors")
        var tensors: [String: NamedTensor] = [:]
        for key in file.names {
            guard let name = PEFTNames.internalName(tower: tower, adapterKey: key), PEFTNames.splitFactor(name) != nil else {
                throw PEFTExportError("'\(file.path)': '\(key)' is not a PEFT LoRA key (base_model.model.<module>.lora_…)")
            }
            tensors[name] = NamedTensor(shape: try file.info(key).shape, values: try file.floats(key))
        }
        return (tensors, r, AdapterSettings(alpha: alpha, dropout: dropout), targets)
    }

    private static func makeDirectory(_ path: String) throws {
        do {
            try OutputDirectory.create(path)
        } catch {
            throw PEFTExportError("cannot create '\(path)' (\(error.localizedDescription))")
        }
    }

    private static func writeJSON(_ object: [String: Any], to path: String) throws {
        do {
            var data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            data.append(0x0A)
            try AtomicFileWriter.write(data, to: path)
        } catch {
            throw PEFTExportError("cannot write '\(path)' (\(error.localizedDescription))")
        }
    }
}
