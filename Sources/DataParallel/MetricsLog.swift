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
public final class MetricsLog {
    public let path: String
    private let handle: FileHandle?

    /// Opens `path` for appending (created if missing); `enabled: false` gives a log that
    /// writes nothing (ranks other than 0).
    public init(path: String, enabled: Bool, truncate: Bool) throws {
        self.path = path
        guard enabled else { handle = nil; return }
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
    }

    deinit { try? handle?.close() }

    /// Drops every record after `step` from the log at `path` (a resumed run continues from
    /// its checkpoint's step, so records a killed run wrote after that checkpoint would
    /// otherwise appear twice). Lines that are not records of a step are kept.
    public static func trim(path: String, toStep step: Int) throws {
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
    }

    /// A Float as a JSON-safe value: the Double of the same value, or null when not finite.
    public static func number(_ value: Float) -> Any { value.isFinite ? Double(value) : NSNull() }
    public static func number(_ value: Double?) -> Any {
        guard let value, value.isFinite else { return NSNull() }
        return value
    }
}
