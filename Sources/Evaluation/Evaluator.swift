import DataParallel
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
public func evaluate(_ model: any TrainableModel, on assembler: BatchAssembler, comm: any Communicator,
                     batchSize: Int, classNames: [String]? = nil,
                     progress: ((_ done: Int, _ total: Int) -> Void)? = nil) throws -> EvaluationResult {
    let dataset = assembler.dataset
    let c = model.classes
    guard dataset.classNames.count == c else {
        throw EvaluationError("'\(dataset.path)' has \(dataset.classNames.count) classes, the model \(c)")
    }
    let sampler = ShardedSampler.evaluation(itemCount: dataset.count, globalBatchSize: batchSize,
                                            rank: comm.rank, worldSize: comm.size)
    var scores: [Float] = [], labels: [Int] = [], indices: [Int] = []
    var lossSum = 0.0
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
            let label = dataset.label(at: index)
            lossSum += Foundation.log(total) - Double(row[label] - top)
            labels.append(label)
            indices.append(index)
        }
    }
    let gathered = try gatherPredictions(comm: comm, scores: scores, labels: labels, globalIndices: indices,
                                         classCount: c, expectedCount: dataset.count)
    let totalLoss = try comm.allreduce(lossSum, .sum)
    return EvaluationResult(predictions: gathered, report: gathered.report(classNames: classNames ?? dataset.classNames),
                            loss: dataset.count > 0 ? totalLoss / Double(dataset.count) : 0)
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
