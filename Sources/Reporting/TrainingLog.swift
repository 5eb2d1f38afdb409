import Formats
import Foundation

/// The loss terms a training run logs at every optimiser step.
public enum LossTerm: String, CaseIterable, Sendable {
    /// The total loss, ce + distill weight × distill.
    case loss
    /// Cross-entropy of the classification head.
    case ce
    /// The distillation term (1 − cosine of image and paired-report embeddings).
    case distill
}

/// The curves of one run, read from its metrics log (`metrics.jsonl`, written by
/// DataParallel's `MetricsLog`): the loss terms of every `"type":"step"` record and the
/// balanced accuracy of every `"type":"val"` record, by step. Other records are ignored.
/// A step logged twice (a resumed run whose log was not trimmed) keeps its last record.
public struct TrainingLog: Sendable {
    public struct Step: Equatable, Sendable {
        public var step: Int
        public var loss: Double?
        public var ce: Double?
        public var distill: Double?

        public init(step: Int, loss: Double?, ce: Double?, distill: Double?) {
            self.step = step
            self.loss = loss
            self.ce = ce
            self.distill = distill
        }

        public func value(_ term: LossTerm) -> Double? {
            switch term {
            case .loss: loss
            case .ce: ce
            case .distill: distill
            }
        }
    }

    public struct Validation: Equatable, Sendable {
        public var step: Int
        public var balancedAccuracy: Double

        public init(step: Int, balancedAccuracy: Double) {
            self.step = step
            self.balancedAccuracy = balancedAccuracy
        }
    }

    /// Step records in step order.
    public var steps: [Step]
    /// Validation records in step order.
    public var validations: [Validation]

    public init(steps: [Step], validations: [Validation]) {
        self.steps = steps
        self.validations = validations
    }

    /// Reads the metrics log at `path`.
    /// - Throws: `ReportingError` when the file cannot be read or a line other than the
    ///   last is not a JSON object (a last line cut off by a killed run is skipped).
    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ReportingError(path: path, "cannot read the metrics log; check that the run folder is readable")
        }
        try self.init(jsonLines: data, path: path)
    }

    /// Parses metrics-log JSON lines; `path` names the file in errors.
    public init(jsonLines data: Data, path: String) throws {
        let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        var steps: [Int: Step] = [:], validations: [Int: Validation] = [:]
        let lastNonEmpty = lines.lastIndex { !$0.isEmpty }
        for (index, line) in lines.enumerated() where !line.isEmpty {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
                if index == lastNonEmpty { break }
                throw ReportingError(path: path, "line \(index + 1) is not a JSON object; the metrics log is damaged "
                                         + "(remove that line, or retrain the run)")
            }
            guard let step = object["step"] as? Int else { continue }
            func number(_ key: String) -> Double? {
                guard let value = ProjectJSON.value(object, key) as? Double, value.isFinite else { return nil }
                return value
            }
            switch object["type"] as? String {
            case "step":
                steps[step] = Step(step: step, loss: number("loss"), ce: number("ce"), distill: number("distill"))
            case "val":
                if let balanced = number("balanced_accuracy") {
                    validations[step] = Validation(step: step, balancedAccuracy: balanced)
                }
            default:
                continue
            }
        }
        self.steps = steps.keys.sorted().map { steps[$0]! }
        self.validations = validations.keys.sorted().map { validations[$0]! }
    }

    /// Reads `metrics.jsonl` beside `file` (a checkpoint in its run folder), or nil when
    /// there is none.
    public static func beside(_ file: String) throws -> TrainingLog? {
        let folder = (file as NSString).deletingLastPathComponent
        let path = (folder.isEmpty ? "." : folder) + "/metrics.jsonl"
        return FileManager.default.fileExists(atPath: path) ? try TrainingLog(path: path) : nil
    }

    /// (step, value) of `term` at every step that logged it.
    public func curve(_ term: LossTerm) -> [(x: Double, y: Double)] {
        steps.compactMap { s in s.value(term).map { (x: Double(s.step), y: $0) } }
    }

    /// (step, balanced accuracy) of every validation.
    public var validationCurve: [(x: Double, y: Double)] {
        validations.map { (x: Double($0.step), y: $0.balancedAccuracy) }
    }

    /// Whether `term` is logged with a value other than 0 at some step (methods without
    /// a distillation term log distill = 0 throughout).
    public func varies(_ term: LossTerm) -> Bool {
        steps.contains { ($0.value(term) ?? 0) != 0 }
    }
}
