import Kernels
import Model

/// What one data-parallel step did, reduced over ranks: what the loop's observers see.
public struct StepReport {
    /// Steps completed (this one included) and the run's length.
    public var step: Int
    public var totalSteps: Int
    /// The epoch the step belongs to, the run's epochs, and the batch's index in the epoch.
    public var epoch: Int
    public var epochs: Int
    public var batchInEpoch: Int
    /// Samples in the global batch.
    public var samples: Int
    public var losses: LossBreakdown
    public var gradientNorm: Float
    public var learningRate: Float
    /// Wall time of the step on this rank.
    public var seconds: Double
    /// Further scalars for the metrics log (snake_case keys), e.g. `text_cos`, `logit_scale`.
    public var scalars: [String: Double]
    /// A rank received a stop signal: the loop ends after this step.
    public var stopRequested: Bool

    public init(step: Int, totalSteps: Int, epoch: Int, epochs: Int, batchInEpoch: Int, samples: Int,
                outcome: DataParallelStep.Outcome, seconds: Double, scalars: [String: Double] = [:]) {
        self.step = step
        self.totalSteps = totalSteps
        self.epoch = epoch
        self.epochs = epochs
        self.batchInEpoch = batchInEpoch
        self.samples = samples
        losses = outcome.losses
        gradientNorm = outcome.gradientNorm
        learningRate = outcome.learningRate
        self.seconds = seconds
        self.scalars = scalars
        stopRequested = outcome.stopRequested
    }
}

/// Something that watches the training loop between steps: the metrics log, the progress
/// display, validation, checkpoints. The loop itself only runs steps and notifies.
public protocol StepObserver: AnyObject {
    func stepEnded(_ report: StepReport) throws
}

/// Sums the samples and seconds of this process's steps: the run's throughput.
public final class ThroughputMeter: StepObserver {
    public private(set) var samples = 0
    public private(set) var seconds = 0.0
    public private(set) var steps = 0

    public init() {}

    public func stepEnded(_ report: StepReport) {
        samples += report.samples
        seconds += report.seconds
        steps += 1
    }

    /// Samples per second over the steps seen.
    public var samplesPerSecond: Double { Double(samples) / max(seconds, 1e-9) }
}

/// Writes one `"type": "step"` record per step into the metrics log: step, epoch, loss,
/// the loss terms when `lossTerms`, lr, grad_norm, the step's throughput under
/// `rateKey`, the rank count and the report's scalars.
public final class StepRecordWriter: StepObserver {
    let log: MetricsLog
    let ranks: Int
    let rateKey: String
    let lossTerms: Bool

    public init(log: MetricsLog, ranks: Int, rateKey: String, lossTerms: Bool) {
        self.log = log
        self.ranks = ranks
        self.rateKey = rateKey
        self.lossTerms = lossTerms
    }

    public func stepEnded(_ r: StepReport) throws {
        var record: [String: Any] = [
            "type": "step", "step": r.step, "epoch": r.epoch, "loss": MetricsLog.number(r.losses.total),
            "lr": MetricsLog.number(r.learningRate), "grad_norm": MetricsLog.number(r.gradientNorm),
            rateKey: Double(r.samples) / max(r.seconds, 1e-9), "ranks": ranks,
        ]
        if lossTerms {
            record["ce"] = MetricsLog.number(r.losses.ce)
            record["distill"] = MetricsLog.number(r.losses.distill)
            for (key, value) in r.losses.extensionTerms { record[key] = MetricsLog.number(value) }
        }
        for (key, value) in r.scalars { record[key] = MetricsLog.number(value) }
        try log.write(record)
    }
}

/// Shows the progress (bar, step, elapsed, ETA, samples/s, the loss and each of its terms,
/// the step's scalars such as `text_cos`) after each step, and warns once when `text_cos`
/// passes `collapseThreshold` (the paired reports' embeddings are becoming one vector:
/// the text tower is collapsing, docs/training.md).
public final class ProgressReporter: StepObserver {
    let display: ProgressDisplay
    let throughput: ThroughputMeter
    let clock = Stopwatch()
    /// `text_cos` above this is warned about once per run.
    public static let collapseThreshold = 0.95
    private var warnedCollapse = false

    /// `throughput` must observe the loop before this reporter.
    public init(display: ProgressDisplay, throughput: ThroughputMeter) {
        self.display = display
        self.throughput = throughput
    }

    public func stepEnded(_ r: StepReport) {
        let perStep = throughput.seconds / Double(max(throughput.steps, 1))
        var values: [(name: String, value: Double)] = [("loss", Double(r.losses.total))]
        if r.losses.ce != r.losses.total {
            values += [("ce", Double(r.losses.ce)), ("distill", Double(r.losses.distill))]
            values += r.losses.extensionTerms.map { ($0.key, Double($0.value)) }
        }
        let textCos = r.scalars["text_cos"]
        if let textCos { values.append(("text_cos", textCos)) }
        display.update(ProgressStatus(label: "epoch \(r.epoch + 1)/\(r.epochs)", done: r.step, total: r.totalSteps,
                                      elapsed: clock.elapsedSeconds, remaining: perStep * Double(r.totalSteps - r.step),
                                      rate: throughput.samplesPerSecond, rateUnit: "img/s", values: values))
        if let textCos, textCos > Self.collapseThreshold, !warnedCollapse {
            warnedCollapse = true
            display.message(String(format: "warning: text_cos %.3f at step %d: the paired reports' text embeddings are "
                                   + "nearly one vector (the text tower is collapsing; docs/training.md, "
                                   + "\"Text-collapse diagnostic\")", textCos, r.step))
        }
    }
}

/// An observer written as a closure (validation and checkpoints of one loop).
public final class StepHook: StepObserver {
    let body: (StepReport) throws -> Void

    public init(_ body: @escaping (StepReport) throws -> Void) { self.body = body }

    public func stepEnded(_ report: StepReport) throws { try body(report) }
}
