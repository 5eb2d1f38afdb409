import DataParallel
import Datasets
import Distributed
import Foundation
import Model

/// The predictions and metrics of one evaluation over a whole split.
public struct EvaluationResult {
    /// Every sample's softmax probabilities, label and index, in index order (the same on
    /// every rank).
    public var predictions: GatheredPredictions
    /// Balanced accuracy (primary), accuracy, macro-F1, macro OvR AUROC, confusion matrix.
    public var report: MetricsReport
    /// Mean cross-entropy of the logits over the split.
    public var loss: Double
}

/// Evaluates `model` on every item of `assembler.dataset`, data-parallel.
///
/// The items are split with `ShardedSampler.evaluation` (index order, every item exactly
/// once over all ranks, no padding duplicates); each rank predicts its slices, then
/// `gatherPredictions` collects all rows on every rank in index order, so the metrics are
/// those of the whole split whatever the number of ranks. Every rank must call this.
/// `progress` is told this rank's images done after each of its batches, and its total.
/// - Throws: `DatasetError` (kind `.unlabelled`) for a file of unlabelled images, which
///   has nothing to score against (`predict` serves it).
public func evaluate(_ model: any TrainableModel, on assembler: BatchAssembler, comm: any Communicator,
                     batchSize: Int, classNames: [String]? = nil,
                     progress: ((_ done: Int, _ total: Int) -> Void)? = nil) throws -> EvaluationResult {
    let dataset = assembler.dataset
    try dataset.requireLabels(for: "evaluated")
    var lossSum = 0.0
    let gathered = try predictAll(model, on: assembler, comm: comm, batchSize: batchSize, progress: progress) {
        index, row, top, total in
        lossSum += Foundation.log(total) - Double(row[dataset.label(at: index)] - top)
    }
    let totalLoss = try comm.allreduce(lossSum, .sum)
    return EvaluationResult(predictions: gathered, report: gathered.report(classNames: classNames ?? dataset.classNames),
                            loss: dataset.count > 0 ? totalLoss / Double(dataset.count) : 0)
}

/// The softmax probabilities of `model` for every item of `assembler.dataset`, gathered in
/// index order on every rank, as `evaluate` computes them but without metrics, so the
/// dataset may be unlabelled: `labels` are the file's labels, -1 for every image of an
/// unlabelled file. Every rank must call this.
public func predict(_ model: any TrainableModel, on assembler: BatchAssembler, comm: any Communicator,
                    batchSize: Int, progress: ((_ done: Int, _ total: Int) -> Void)? = nil) throws -> GatheredPredictions {
    try predictAll(model, on: assembler, comm: comm, batchSize: batchSize, progress: progress) { _, _, _, _ in }
}

/// The loop `evaluate` and `predict` share: this rank's items in batches, a softmax row per
/// item (`eachRow` is given its index, logits, largest logit and Σ exp), gathered on every
/// rank in index order.
private func predictAll(_ model: any TrainableModel, on assembler: BatchAssembler, comm: any Communicator,
                        batchSize: Int, progress: ((_ done: Int, _ total: Int) -> Void)?,
                        eachRow: (_ index: Int, _ logits: UnsafePointer<Float>, _ top: Float, _ total: Double) -> Void)
    throws -> GatheredPredictions {
    let dataset = assembler.dataset
    let c = model.classes
    guard dataset.classNames.count == c else {
        throw EvaluationError("'\(dataset.path)' has \(dataset.classNames.count) classes, the model \(c)")
    }
    let sampler = ShardedSampler.evaluation(itemCount: dataset.count, globalBatchSize: batchSize,
                                            rank: comm.rank, worldSize: comm.size)
    var scores: [Float] = [], labels: [Int] = [], indices: [Int] = []
    let wasTraining = model.isTraining
    model.isTraining = false
    defer { model.isTraining = wasTraining }
    let batches = sampler.batches(epoch: 0)
    let localTotal = batches.reduce(0) { $0 + $1.count }
    for local in batches where !local.isEmpty {
        defer { progress?(indices.count, localTotal) }
        let batch = assembler.assemble(local, inputs: model.predictionInputs, seed: 0, epoch: 0)
        let logits = model.predict(batch)
        for (b, index) in local.enumerated() {
            let row = logits + b * c
            let (top, total) = appendSoftmax(row, count: c, to: &scores)
            eachRow(index, row, top, total)
            labels.append(dataset.label(at: index))
            indices.append(index)
        }
    }
    return try gatherPredictions(comm: comm, scores: scores, labels: labels, globalIndices: indices,
                                 classCount: c, expectedCount: dataset.count)
}

/// Appends softmax(`logits`) (`count` values) to `scores`, with the sums in Double, and
/// returns the largest logit and Σ exp(logit − largest) (so the cross-entropy of class y is
/// log Σ − (logit_y − largest)).
@discardableResult
public func appendSoftmax(_ logits: UnsafePointer<Float>, count: Int, to scores: inout [Float]) -> (top: Float, total: Double) {
    var top = logits[0]
    for k in 1..<count { top = max(top, logits[k]) }
    var total = 0.0
    for k in 0..<count { total += Foundation.exp(Double(logits[k] - top)) }
    for k in 0..<count { scores.append(Float(Foundation.exp(Double(logits[k] - top)) / total)) }
    return (top, total)
}

/// An evaluation that cannot run (data that does not fit the model); `description` says
/// what to do.
public struct EvaluationError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
