import Formats
import Foundation

/// The JSON-lines metrics log of a run (`metrics.jsonl`), written by rank 0: one object
/// per optimiser step and one per validation, each on its own line and flushed at once
/// (so `tail -f` and a crashed run show everything up to the last step).
///
///     {"type":"step","step":12,"epoch":0,"loss":0.91,"ce":0.73,"distill":0.18,"lr":0.001,
///      "grad_norm":1.7,"images_per_s":412.5,"ranks":2,"text_cos":0.31}
///     {"type":"val","step":12,"epoch":0,"balanced_accuracy":0.61,"accuracy":0.63,
///      "macro_f1":0.6,"macro_auroc":0.82,"loss":0.88,"samples":200,"best":true}
///
/// `text_cos` (methods with a text tower in the loss only) is the mean pairwise cosine of
/// the global batch's paired-report embeddings: near 1 when the text tower has collapsed.
/// Keys are sorted within each line. Losses are the global-batch means (the sum over
/// ranks of each rank's share), written with the full precision of the Float. A resumed
/// run appends to the same file.
///
/// Every record is mirrored into a TensorBoard event file in the `tensorboard` folder
/// beside the log (`TensorBoardEventWriter`): each number of the record except `step`,
/// as a float scalar tagged "<type>/<key>" at the record's step, where a `"step"` record's
/// type is written `train` (`train/loss`, `train/lr`, `val/balanced_accuracy`, …);
/// booleans, strings and nulls (non-finite values) are left out. `write(image:tag:step:)`
/// adds images (the trainer's final confusion matrix).
public final class MetricsLog {
    public let path: String
    private let handle: FileHandle?
    private let events: TensorBoardEventWriter?

    /// Opens `path` for appending (created if missing) and starts a new TensorBoard event
    /// file; `truncate` empties the log and deletes the old event files first. `enabled:
    /// false` gives a log that writes nothing (ranks other than 0).
    public init(path: String, enabled: Bool, truncate: Bool) throws {
        self.path = path
        guard enabled else { (handle, events) = (nil, nil); return }
        let manager = FileManager.default
        if truncate || !manager.fileExists(atPath: path) {
            guard manager.createFile(atPath: path, contents: nil) else {
                throw DataParallelError("cannot create the metrics log '\(path)': check that the output directory is writable")
            }
        }
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw DataParallelError("cannot open the metrics log '\(path)' for writing")
        }
        handle.seekToEndOfFile()
        self.handle = handle
        let tensorBoard = Self.tensorBoardDirectory(forLog: path)
        if truncate { try TensorBoardEventWriter.removeEventFiles(in: tensorBoard) }
        events = try TensorBoardEventWriter(directory: tensorBoard)
    }

    /// The folder of the TensorBoard event files mirroring the log at `path`.
    public static func tensorBoardDirectory(forLog path: String) -> String {
        ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent("tensorboard")
    }

    deinit { try? handle?.close() }

    /// Drops every record after `step` from the log at `path` and from its TensorBoard event
    /// files (a resumed run continues from its checkpoint's step, so records a killed run
    /// wrote after that checkpoint would otherwise appear twice). Lines that are not
    /// records of a step are kept.
    public static func trim(path: String, toStep step: Int) throws {
        try TensorBoardEventWriter.trim(directory: tensorBoardDirectory(forLog: path), toStep: step)
        guard let data = FileManager.default.contents(atPath: path) else { return }
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true)
        let kept = lines.filter { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let recordStep = object["step"] as? Int else { return true }
            return recordStep <= step
        }
        guard kept.count != lines.count else { return }
        let text = kept.map { $0 + "\n" }.joined()
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw DataParallelError("cannot rewrite the metrics log '\(path)': \(error.localizedDescription)")
        }
    }

    /// Appends one record (values: numbers, strings, booleans, NSNull, arrays of them).
    public func write(_ record: [String: Any]) throws {
        guard let handle else { return }
        var data = try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes])
        data.append(UInt8(ascii: "\n"))
        try handle.write(contentsOf: data)
        if let (step, values) = Self.tensorBoardValues(of: record), !values.isEmpty {
            try events?.write(step: step, values: values)
        }
    }

    /// Adds an image to the TensorBoard event file at `step` (nothing on a disabled log).
    public func write(image: TensorBoardImage, tag: String, step: Int) throws {
        try events?.write(step: step, values: [TensorBoardValue(tag: tag, content: .image(image))])
    }

    /// A record's step and its numbers as TensorBoard scalars, tags sorted; nil without a
    /// `type` and an integer `step`.
    static func tensorBoardValues(of record: [String: Any]) -> (step: Int, values: [TensorBoardValue])? {
        guard let type = record["type"] as? String, let step = record["step"] as? Int else { return nil }
        let prefix = type == "step" ? "train" : type
        let values = record.keys.sorted().compactMap { key -> TensorBoardValue? in
            guard key != "step", key != "type" else { return nil }
            switch record[key]! {
            case is Bool: return nil
            case let value as Int: return .scalar(prefix + "/" + key, Float(value))
            case let value as Double: return .scalar(prefix + "/" + key, Float(value))
            case let value as Float: return .scalar(prefix + "/" + key, value)
            default: return nil
            }
        }
        return (step, values)
    }

    /// A Float as a JSON-safe value: the Double of the same value, or null when not finite.
    public static func number(_ value: Float) -> Any { value.isFinite ? Double(value) : NSNull() }
    public static func number(_ value: Double?) -> Any {
        guard let value, value.isFinite else { return NSNull() }
        return value
    }
}
