import Distributed
import Model

/// One data-parallel optimiser step, the same for every loop (Stage 2 training and
/// retriever pretraining), in llm.c's order:
///
///     zero → forward/backward on this rank's slice → allreduce(gradients) →
///     allreduce(losses, diagnostics) → finite check → clip → schedule → update
///
/// Every rank calls `run` with its slice of the same global batch. The caller's
/// forward/backward divides every per-sample term by the *global* batch size, so the
/// summed flat gradient (ONE allreduce over `store.gradients`) is the gradient a single
/// rank would compute over the whole batch, and the summed losses are the batch's loss.
/// The losses, the caller's diagnostic sums and the ranks' stop votes (`StopSignals`)
/// travel in one second, small allreduce.
/// Clipping and the update then run on identical inputs on every rank, so the weights
/// stay bit-identical across ranks.
public final class DataParallelStep {
    public let comm: any Communicator
    public let store: ParameterStore
    public let optimizer: any Optimizer
    public let schedule: LearningRateSchedule
    /// Global gradient-norm threshold; 0 disables clipping.
    public let gradientClip: Float
    /// Seeds the LoRA-dropout masks (with the step and the global row).
    public let dropoutSeed: UInt64
    /// What a non-finite loss error tells the user to do (the loop's own option names).
    public let divergenceHint: String
    /// This rank's stop flag (graceful preemption), reduced with the losses.
    public let stopSignals: StopSignals?
    /// `LossBreakdown.fieldCount` losses, `diagnosticWidth` diagnostic sums, then one stop
    /// vote: the second allreduce's buffer, allocated once.
    private let reduction: UnsafeMutableBufferPointer<Float>
    private let diagnosticWidth: Int

    /// - Parameter diagnosticWidth: floats of per-step sums the forward/backward may add
    ///   into (`run`'s `diagnostics`), reduced with the losses; 0 for none.
    /// - Parameter microBatchCapacity: deterministic mode (`run(step:batch:sampler:_:)`):
    ///   the most micro-batches this rank holds in one step; 0 for the plain mode only.
    public init(comm: any Communicator, store: ParameterStore, optimizer: any Optimizer,
                schedule: LearningRateSchedule, gradientClip: Float, dropoutSeed: UInt64,
                diagnosticWidth: Int = 0, divergenceHint: String, stopSignals: StopSignals? = nil,
                microBatchCapacity: Int = 0) {
        self.comm = comm
        self.store = store
        self.optimizer = optimizer
        self.schedule = schedule
        self.gradientClip = gradientClip
        self.dropoutSeed = dropoutSeed
        self.divergenceHint = divergenceHint
        self.stopSignals = stopSignals
        self.diagnosticWidth = diagnosticWidth
        reduction = .allocate(capacity: LossBreakdown.fieldCount + diagnosticWidth + 1)
        reduction.initialize(repeating: 0)
        if microBatchCapacity > 0 {
            // One grid per parameter tensor, and one per loss term and diagnostic value.
            let tensors = store.parameters.filter(\.isTrainable).map { $0.offset ..< $0.offset + $0.count }
            let scalars = (0 ..< LossBreakdown.fieldCount + diagnosticWidth).map { store.trainableCount + $0 ..< store.trainableCount + $0 + 1 }
            exactSum = ExactMicroBatchSum(width: store.trainableCount + scalars.count, capacity: microBatchCapacity,
                                          segments: tensors.sorted { $0.lowerBound < $1.lowerBound } + scalars)
        } else {
            exactSum = nil
        }
    }

    deinit { reduction.deallocate() }

    /// Deterministic mode's exact sum over micro-batches; nil in the plain mode.
    private let exactSum: ExactMicroBatchSum?

    /// The reduced outcome of one step.
    public struct Outcome {
        /// The global batch's losses (summed over ranks).
        public var losses: LossBreakdown
        /// The global gradient norm before clipping.
        public var gradientNorm: Float
        /// The learning rate the update used.
        public var learningRate: Float
        /// Some rank received a stop signal before this step's reduction: every rank stops
        /// after this step.
        public var stopRequested: Bool
        /// The diagnostic sums over all ranks (`diagnosticWidth` floats), valid until the
        /// next `run`.
        public var diagnostics: UnsafeBufferPointer<Float>
    }

    /// Runs step `step` (0-based; it selects the learning rate and the dropout masks) on a
    /// global batch of which this rank holds the rows starting at `firstGlobalRow`
    /// (`ShardedSampler.localRows`). `forwardBackward` runs this rank's slice (on every
    /// rank, even with an empty slice, since a model's loss may itself run collectives; an
    /// empty slice returns zeros), adds into `store.gradients` and into `diagnostics`, and
    /// returns the slice's losses. Nothing is allocated.
    @discardableResult
    public func run(step: Int, firstGlobalRow: Int,
                    _ forwardBackward: (_ diagnostics: UnsafeMutableBufferPointer<Float>) throws -> LossBreakdown)
        throws -> Outcome {
        store.zeroGradients()
        comm.beginStep(step + 1)
        // Dropout masks are drawn per global row, so they do not depend on the rank count.
        store.execution.dropout = DropoutStream(seed: dropoutSeed, step: UInt64(step), firstGlobalRow: firstGlobalRow)
        let first = LossBreakdown.fieldCount, stopSlot = first + diagnosticWidth
        reduction.update(repeating: 0)
        let losses = try forwardBackward(UnsafeMutableBufferPointer(rebasing: reduction[first..<stopSlot]))
        losses.write(into: reduction)
        reduction[stopSlot] = stopSignals?.signalReceived == nil ? 0 : 1
        try comm.allreduce(store.gradients.data, count: store.trainableCount, .sum)
        try comm.allreduce(reduction, .sum)
        return try finish(step: step)
    }

    /// Deterministic mode: runs step `step` on global batch `batch` as fixed micro-batches
    /// (`sampler.microBatchSize` rows each; this rank's are
    /// `sampler.localMicroBatches(batch:)`), each computed from zeroed gradients by
    /// `forwardBackward(rows, diagnostics)` with its own dropout masks, and summed over all
    /// ranks exactly (`ExactMicroBatchSum`): the reduced gradient, losses and diagnostics
    /// are the same bits on any rank count. `forwardBackward` is only called for this
    /// rank's micro-batches (a rank may hold none), so the model's loss must not run
    /// collectives. Requires `microBatchCapacity` ≥ this rank's micro-batch count.
    @discardableResult
    public func run(step: Int, batch: Int, sampler: ShardedSampler,
                    _ forwardBackward: (_ rows: Range<Int>, _ diagnostics: UnsafeMutableBufferPointer<Float>) throws -> LossBreakdown)
        throws -> Outcome {
        guard let exactSum else { preconditionFailure("DataParallelStep: deterministic run without a micro-batch capacity") }
        comm.beginStep(step + 1)
        exactSum.begin()
        let parameters = store.trainableCount, losses = LossBreakdown.fieldCount
        for micro in sampler.localMicroBatches(batch: batch) {
            let rows = sampler.microBatchRows(batch: batch, micro: micro)
            store.zeroGradients()
            // Dropout masks are drawn per global row, so they do not depend on the rank count.
            store.execution.dropout = DropoutStream(seed: dropoutSeed, step: UInt64(step), firstGlobalRow: rows.lowerBound)
            let slot = exactSum.nextSlot()
            let extras = UnsafeMutableBufferPointer(rebasing: slot[parameters...])
            let microLosses = try forwardBackward(rows, UnsafeMutableBufferPointer(rebasing: extras[losses...]))
            microLosses.write(into: extras)
            slot.baseAddress!.update(from: store.gradients.data, count: parameters)
            exactSum.commitSlot()
        }
        let vote = try exactSum.reduce(over: comm, microBatches: sampler.microBatchCount(batch),
                                       vote: stopSignals?.signalReceived == nil ? 0 : 1)
        let sum = exactSum.result.baseAddress!
        store.gradients.data.update(from: sum, count: parameters)
        reduction.baseAddress!.update(from: sum + parameters, count: losses + diagnosticWidth)
        reduction[losses + diagnosticWidth] = vote
        return try finish(step: step)
    }

    /// After the reduction (losses, diagnostics and stop vote in `reduction`, the summed
    /// gradient in `store.gradients`): finite checks, clipping, schedule, update.
    private func finish(step: Int) throws -> Outcome {
        let first = LossBreakdown.fieldCount, stopSlot = first + diagnosticWidth
        let reduced = LossBreakdown(reading: UnsafeBufferPointer(reduction))
        if let (term, value) = reduced.firstNonFinite {
            throw DataParallelError("the \(term) became \(value) at step \(step + 1): \(divergenceHint)")
        }
        let norm = gradientClip > 0
            ? clipGradientNorm(store.gradients.data, count: store.trainableCount, maxNorm: gradientClip)
            : Float(gradientNorm(store.gradients.data, count: store.trainableCount))
        // Every rank computed the same norm from the same reduced gradient, so all stop together.
        guard norm.isFinite else {
            throw DataParallelError("the gradient norm became \(norm) at step \(step + 1) (the loss was "
                                    + "\(reduced.total)): \(divergenceHint)")
        }
        let lr = schedule.learningRate(atStep: step)
        optimizer.step(store, learningRate: lr)
        return Outcome(losses: reduced, gradientNorm: norm, learningRate: lr, stopRequested: reduction[stopSlot] > 0,
                       diagnostics: UnsafeBufferPointer(rebasing: reduction[first..<stopSlot]))
    }
}

extension LossBreakdown {
    /// How many floats `write(into:)` packs: total, ce, distill, kd, contrastive, ce_real_text.
    public static let fieldCount = 6

    /// Packs the named losses at the start of a reduction buffer.
    func write(into buffer: UnsafeMutableBufferPointer<Float>) {
        buffer[0] = total
        buffer[1] = ce
        buffer[2] = distill
        buffer[3] = kd
        buffer[4] = contrastive
        buffer[5] = ceRealText
    }

    /// Reads what `write(into:)` packed.
    init(reading buffer: UnsafeBufferPointer<Float>) {
        self.init(total: buffer[0], ce: buffer[1], distill: buffer[2], kd: buffer[3], contrastive: buffer[4],
                  ceRealText: buffer[5])
    }

    /// The terms beyond the reference's (key, value), those that are not 0.
    public var extensionTerms: [(key: String, value: Float)] {
        [("kd", kd), ("contrastive", contrastive), ("ce_real_text", ceRealText)].filter { $0.1 != 0 }
    }

    /// The first of the loss and its terms that is NaN or infinite, with its name.
    var firstNonFinite: (term: String, value: Float)? {
        if !total.isFinite { return ("loss", total) }
        if !ce.isFinite { return ("ce term", ce) }
        if !distill.isFinite { return ("distill term", distill) }
        if !kd.isFinite { return ("kd term", kd) }
        if !contrastive.isFinite { return ("contrastive term", contrastive) }
        if !ceRealText.isFinite { return ("ce_real_text term", ceRealText) }
        return nil
    }
}

/// A data-parallel loop that cannot go on (a non-finite loss); `description` says what to do.
public struct DataParallelError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension RowExchange {
    /// The row exchange of one global batch over `comm`'s ranks: `counts` rows per rank,
    /// in rank order (`ShardedSampler.sliceCounts`), gathered with `allgatherv`.
    public init(comm: any Communicator, counts: [Int]) {
        self.init(rank: comm.rank, counts: counts) { local, counts, all in
            try comm.allgatherv(local, counts: counts, into: all)
        }
    }
}

/// Stops a run whose loss jumps far above its recent values: a loss above `factor` × the
/// median of the last `window` losses (as many as there are, from the second step on) is
/// an error — the run is diverging even if the values are still finite. `factor` 0 turns
/// it off.
public struct DivergenceGuard {
    public let factor: Float
    public let window: Int
    private var recent: [Float] = []

    public init(factor: Float, window: Int = 50) {
        precondition(window >= 1, "DivergenceGuard: the window must hold at least one loss")
        self.factor = factor
        self.window = window
    }

    /// Records `loss` of step `step` (1-based), throwing when it diverges.
    public mutating func check(_ loss: Float, step: Int) throws {
        guard factor > 0 else { return }
        if !recent.isEmpty {
            let sorted = recent.sorted(), n = sorted.count
            let median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
            if loss > factor * median {
                throw DataParallelError("the loss \(loss) at step \(step) is above \(factor) × the median \(median) of "
                                        + "the last \(n) steps: the run is diverging; lower the learning rate "
                                        + "or raise the guard's factor")
            }
        }
        if recent.count == window { recent.removeFirst() }
        recent.append(loss)
    }
}
