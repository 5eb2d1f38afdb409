import Datasets
import Formats
import Foundation
import Model

// MARK: - A pretrained folder's tokenizer as a text encoding

/// The tokenizer of a pretrained text tower's model folder (`model.init_text`; CLIP BPE, or
/// CONCH's byte-level BPE), as the trainer's `TextEncoding`: `[start] + BPE ids + [end]`,
/// truncated to the tower's context (end kept) and zero-padded — the ids the tower was
/// trained on. (The state's kind stays "clip-bpe" for every folder tokenizer, so checkpoints
/// written before byte-level tokenizers existed still read.)
///
/// Checkpoints store `stateJSON`: the folder, the family and, for every tokenizer file, its
/// path, size and CRC-32. The vocabulary itself (≈ 1.3 MB for CLIP) is not copied; rebuilding
/// reads the files again and stops with a clear error if one is missing or has changed.
public final class CLIPTextEncoding: TextEncoding {
    public let tokenizer: any PretrainedTokenizer
    public let directory: String
    public let files: [FileFingerprint]

    /// Path, size and CRC-32 of one tokenizer file.
    public struct FileFingerprint: Codable, Equatable, Sendable {
        public var path: String
        public var bytes: Int
        public var crc32: String

        public init(path: String) throws {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw TokenizerError("cannot read the tokenizer file '\(path)'")
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
        files = try (model.tokenizerFiles?.paths ?? []).map { try FileFingerprint(path: $0) }
    }

    /// Rebuilds the encoding a checkpoint recorded, checking that the tokenizer files are
    /// the ones the run was trained with.
    convenience init(state: State) throws {
        try self.init(folder: state.directory)
        guard files == state.files else {
            let recorded = state.files.map { "\($0.path) (\($0.bytes) bytes, crc32 \($0.crc32))" }.joined(separator: ", ")
            let now = files.map { "\($0.path) (\($0.bytes) bytes, crc32 \($0.crc32))" }.joined(separator: ", ")
            throw TokenizerError("the tokenizer files of '\(state.directory)' changed since the checkpoint was written "
                                + "(recorded: \(recorded); now: \(now)); restore the model folder the run was "
                                + "trained with")
        }
        guard contextLength == state.contextLength else {
            throw TokenizerError("the text tower of '\(state.directory)' now has context \(contextLength), the checkpoint "
                                + "was trained with \(state.contextLength)")
        }
    }

    public var contextLength: Int { tokenizer.contextLength }
    public var vocabularySize: Int { tokenizer.vocabularySize }
    public var endOfTextId: Int32 { tokenizer.endOfTextId }
    public func encode(_ text: String) -> [Int32] { tokenizer.tokenize(text) }

    public var stateJSON: String { Self.json(State(kind: "clip-bpe", directory: directory, contextLength: contextLength,
                                                   files: files)) }

    private static func json(_ state: State) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try! encoder.encode(state), as: UTF8.self)
    }

    /// `stateJSON` of a model folder that moved to `folder` (a relocated run folder): its
    /// directory and the paths of its files under the new place, sizes and CRC-32s kept, so
    /// rebuilding still checks the files. Any other state (a word tokenizer) is returned as is.
    public static func relocated(stateJSON: String, to folder: String) -> String {
        guard var state = try? JSONDecoder().decode(State.self, from: Data(stateJSON.utf8)), state.kind == "clip-bpe"
        else { return stateJSON }
        let old = state.directory
        state.files = state.files.map { file in
            var moved = file
            moved.path = folder + "/" + (file.path.hasPrefix(old + "/") ? String(file.path.dropFirst(old.count + 1))
                                                                          : (file.path as NSString).lastPathComponent)
            return moved
        }
        state.directory = folder
        return json(state)
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
            throw TokenizerError("unreadable CLIP tokenizer state (\(error))")
        }
        return try CLIPTextEncoding(state: state)
    default:
        return try WordTokenizer(stateJSON: stateJSON)
    }
}

/// Checks that `encoding` produces ids `tower` can read: the same context length and
/// end-of-text id, and no id beyond the embedding table (the word tokenizer's vocabulary
/// must equal the table).
public func checkEncoding(_ encoding: any TextEncoding, fits tower: TextConfig) throws {
    let vocabularyFits = encoding is WordTokenizer ? encoding.vocabularySize == tower.vocabularySize
        : encoding.vocabularySize <= tower.vocabularySize
    guard vocabularyFits, encoding.contextLength == tower.contextLength, encoding.endOfTextId == tower.endOfTextId else {
        throw TokenizerError("the tokenizer (vocabulary \(encoding.vocabularySize), context \(encoding.contextLength), "
                            + "end-of-text id \(encoding.endOfTextId)) does not fit the text tower (model.text: vocabulary "
                            + "\(tower.vocabularySize), context \(tower.contextLength), end-of-text id \(tower.endOfTextId))")
    }
}
