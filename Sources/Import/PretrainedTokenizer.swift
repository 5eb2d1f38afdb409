import Datasets

/// The tokenizer of a pretrained text tower: CLIP BPE (`CLIPTokenizer`: transformers CLIP,
/// open_clip) or byte-level BPE (`ByteLevelBPETokenizer`: CONCH). Each text becomes exactly
/// `contextLength` ids — start, the text's ids (truncated), end, padding 0 — the ids the tower
/// was trained on.
public protocol PretrainedTokenizer: AnyObject {
    var contextLength: Int { get }
    /// Ids are in `0..<vocabularySize`.
    var vocabularySize: Int { get }
    var endOfTextId: Int32 { get }
    /// `contextLength` ids of one text.
    func tokenize(_ text: String) -> [Int32]
    /// Row-major (texts.count, contextLength) ids.
    func tokenize(_ texts: [String]) -> [Int32]
}

extension CLIPTokenizer: PretrainedTokenizer {
    public func tokenize(_ text: String) -> [Int32] { tokenize(text, contextLength: nil) }
    public func tokenize(_ texts: [String]) -> [Int32] { tokenize(texts, contextLength: nil) }
}

extension ByteLevelBPETokenizer: PretrainedTokenizer {}
