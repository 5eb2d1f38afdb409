import Foundation
import Formats
import Import
import Model

// MARK: - The CLIP BPE tokenizer as a text encoding

/// The CLIP BPE tokenizer of a pretrained text tower's model folder (`model.init_text`), as
/// the trainer's `TextEncoding`: `[start] + BPE ids + [end]`, truncated to the tower's
/// context (end kept) and zero-padded — the ids the tower was trained on.
///
/// Checkpoints store `stateJSON`: the folder, the family and, for every tokenizer file, its
/// path, size and CRC-32. The vocabulary itself (≈ 1.3 MB for CLIP) is not copied; rebuilding
/// reads the files again and stops with a clear error if one is missing or has changed.
public final class CLIPTextEncoding: TextEncoding {
    public let tokenizer: CLIPTokenizer
    public let directory: String
    public let files: [FileFingerprint]

    /// Path, size and CRC-32 of one tokenizer file.
    public struct FileFingerprint: Codable, Equatable, Sendable {
        public var path: String
        public var bytes: Int
        public var crc32: String

        public init(path: String) throws {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw TrainingError("cannot read the tokenizer file '\(path)'")
            }
            self.path = path
            bytes = data.count
            crc32 = String(format: "%08x", data.withUnsafeBytes { Zlib.crc32($0) })
        }
    }

    struct State: Codable {
        var kind: String
        var directory: String
        var contextLength: Int
        var files: [FileFingerprint]
    }

    /// The tokenizer of the model folder `directory` (which must have a text tower).
    public init(folder directory: String) throws {
        let model = try PretrainedModel(directory: directory)
        tokenizer = try model.makeTokenizer()
        self.directory = directory
        switch model.tokenizerFiles {
        case .vocabularyAndMerges(let v, let m)?: files = [try FileFingerprint(path: v), try FileFingerprint(path: m)]
        case .bpeGzip(let g)?: files = [try FileFingerprint(path: g)]
        case nil: files = []
        }
    }

    /// Rebuilds the encoding a checkpoint recorded, checking that the tokenizer files are
    /// the ones the run was trained with.
    convenience init(state: State) throws {
        try self.init(folder: state.directory)
        guard files == state.files else {
            let recorded = state.files.map { "\($0.path) (\($0.bytes) bytes, crc32 \($0.crc32))" }.joined(separator: ", ")
            let now = files.map { "\($0.path) (\($0.bytes) bytes, crc32 \($0.crc32))" }.joined(separator: ", ")
            throw TrainingError("the tokenizer files of '\(state.directory)' changed since the checkpoint was written "
                                + "(recorded: \(recorded); now: \(now)); restore the model folder the run was "
                                + "trained with")
        }
        guard contextLength == state.contextLength else {
            throw TrainingError("the text tower of '\(state.directory)' now has context \(contextLength), the checkpoint "
                                + "was trained with \(state.contextLength)")
        }
    }

    public var contextLength: Int { tokenizer.contextLength }
    public var vocabularySize: Int { tokenizer.vocabularySize }
    public var endOfTextId: Int32 { tokenizer.endOfTextId }
    public func encode(_ text: String) -> [Int32] { tokenizer.tokenize(text) }

    public var stateJSON: String {
        let state = State(kind: "clip-bpe", directory: directory, contextLength: contextLength, files: files)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try! encoder.encode(state), as: UTF8.self)
    }
}

/// Rebuilds the text encoding a checkpoint or retriever export stored (`stateJSON` of a
/// `WordTokenizer` or a `CLIPTextEncoding`).
public func makeTextEncoding(stateJSON: String) throws -> any TextEncoding {
    struct Kind: Decodable { var kind: String }
    let kind = (try? JSONDecoder().decode(Kind.self, from: Data(stateJSON.utf8)))?.kind
    switch kind {
    case "clip-bpe":
        let state: CLIPTextEncoding.State
        do {
            state = try JSONDecoder().decode(CLIPTextEncoding.State.self, from: Data(stateJSON.utf8))
        } catch {
            throw TrainingError("unreadable CLIP tokenizer state (\(error))")
        }
        return try CLIPTextEncoding(state: state)
    default:
        return try WordTokenizer(stateJSON: stateJSON)
    }
}

/// Checks that `encoding` produces ids `tower` can read: the same context length and
/// end-of-text id, and no id beyond the embedding table (the word tokenizer's vocabulary
/// must equal the table).
func checkEncoding(_ encoding: any TextEncoding, fits tower: TextConfig) throws {
    let vocabularyFits = encoding is WordTokenizer ? encoding.vocabularySize == tower.vocabularySize
        : encoding.vocabularySize <= tower.vocabularySize
    guard vocabularyFits, encoding.contextLength == tower.contextLength, encoding.endOfTextId == tower.endOfTextId else {
        throw TrainingError("the tokenizer (vocabulary \(encoding.vocabularySize), context \(encoding.contextLength), "
                            + "end-of-text id \(encoding.endOfTextId)) does not fit the text tower (model.text: vocabulary "
                            + "\(tower.vocabularySize), context \(tower.contextLength), end-of-text id \(tower.endOfTextId))")
    }
}

// MARK: - Pretrained model folders as towers

extension TrainingConfig {
    /// The configuration with the towers of pretrained model folders in place:
    ///
    /// - `model.init_vision` = a timm / transformers CLIP / open_clip folder: `model.vision`
    ///   becomes the folder's image tower without its projection (the backbone's pooled
    ///   features, what timm returns), and `data.preprocessing`, when unset, the folder's
    ///   evaluation preprocessing (resize, crop, filter, mean, std).
    /// - `model.init_text` = a transformers CLIP / open_clip folder: `model.text` becomes the
    ///   folder's text tower (with its projection) and `data.tokenizer` `clip`, the folder's
    ///   CLIP BPE tokenizer.
    ///
    /// Files (retriever exports, `writeInternalWeights` outputs) leave the configuration as
    /// it is. Applying it twice gives the same configuration.
    public func resolvingPretrainedFolders() throws -> TrainingConfig {
        var c = self
        if isModelFolder(model.initVision) {
            let folder = try PretrainedModel(directory: model.initVision)
            guard var vision = folder.vision else {
                throw TrainingError("model.init_vision '\(model.initVision)' is a \(folder.family.rawValue) folder "
                                    + "without an image tower")
            }
            vision.projectionDim = nil
            c.model.vision = vision
            if c.data.preprocessing == nil { c.data.preprocessing = folder.preprocessing }
        }
        if isModelFolder(model.initText) {
            let folder = try PretrainedModel(directory: model.initText)
            guard let text = folder.text else {
                throw TrainingError("model.init_text '\(model.initText)' is a \(folder.family.rawValue) folder without "
                                    + "a text tower (timm folders are image-only; use a transformers CLIP or open_clip folder)")
            }
            c.model.text = text
            c.data.tokenizer = "clip"
        }
        return c
    }
}

/// Loads the `prefix` tower (`vision.` or `text.`) of `store` from the model folder
/// `directory` through the folder's weight mapping. LoRA factors keep their initial
/// values; a tower whose shapes differ from the folder's is one error listing every
/// mismatch.
func loadPretrainedFolder(_ directory: String, prefix: String, into store: ParameterStore) throws {
    let folder = try PretrainedModel(directory: directory)
    try folder.importWeights(into: store, vision: prefix == "vision.", text: prefix == "text.")
}
