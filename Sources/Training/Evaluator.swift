import Foundation
import Kernels
import Distributed
import Datasets

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
public func evaluate(_ model: any TrainableModel, on assembler: BatchAssembler, comm: any Communicator,
                     batchSize: Int, classNames: [String]? = nil) throws -> EvaluationResult {
    let dataset = assembler.dataset
    let c = model.classes
    guard dataset.classNames.count == c else {
        throw TrainingError("'\(dataset.path)' has \(dataset.classNames.count) classes, the model \(c)")
    }
    let sampler = ShardedSampler.evaluation(itemCount: dataset.count, globalBatchSize: batchSize,
                                            rank: comm.rank, worldSize: comm.size)
    var scores: [Float] = [], labels: [Int] = [], indices: [Int] = []
    var lossSum = 0.0
    let wasTraining = model.isTraining
    model.isTraining = false
    defer { model.isTraining = wasTraining }
    for local in sampler.batches(epoch: 0) where !local.isEmpty {
        let batch = assembler.assemble(local, inputs: model.predictionInputs, seed: 0, epoch: 0)
        let logits = model.predict(batch)
        for (b, index) in local.enumerated() {
            let row = logits + b * c
            var top = row[0]
            for k in 1..<c { top = max(top, row[k]) }
            var total = 0.0
            for k in 0..<c { total += Foundation.exp(Double(row[k] - top)) }
            let label = dataset.label(at: index)
            lossSum += Foundation.log(total) - Double(row[label] - top)
            for k in 0..<c { scores.append(Float(Foundation.exp(Double(row[k] - top)) / total)) }
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

/// The assembler that feeds a checkpoint's model with `dataset` for evaluation or
/// prediction: the evaluation transform at the model's image size and normalisation (or
/// the pretrained tower's exact preprocessing, `data.preprocessing`) and,
/// when the model reads text (the text-only classifier), each image's paired report
/// from `pairsPath` and `reportsPath`, encoded with the tokenizer stored in the checkpoint.
public func evaluationAssembler(for model: any TrainableModel, header: Checkpoint.Header, dataset: DatasetFile,
                                pairsPath: String?, reportsPath: String?) throws -> BatchAssembler {
    let config = header.config
    guard dataset.classNames == header.classNames else {
        throw TrainingError("'\(dataset.path)' has classes \(dataset.classNames), the checkpoint was trained on "
                            + "\(header.classNames)")
    }
    var text: PairedText?
    if model.predictionInputs.contains(.tokens) {
        guard let pairsPath, !pairsPath.isEmpty else {
            throw TrainingError("the \(config.method) model reads each image's paired report: pass the pairs file of "
                                + "'\(dataset.path)' (--pairs)")
        }
        let reports = (reportsPath?.isEmpty == false ? reportsPath : nil) ?? config.data.reports
        guard !reports.isEmpty else { throw TrainingError("pass the report corpus the pairs index into (--reports)") }
        guard let state = header.tokenizerState else {
            throw TrainingError("the checkpoint has no tokenizer state; it was not written by a text model")
        }
        let encoding = try makeTextEncoding(stateJSON: state)
        let method = try config.trainingMethod()
        text = try PairedText(corpus: try ReportCorpus(path: reports),
                              pairs: try PairsFile(contentsOf: URL(fileURLWithPath: pairsPath)),
                              imageCount: dataset.count, encoding: encoding, wordDropFraction: method.wordDropFraction,
                              seed: UInt64(truncatingIfNeeded: config.seed), pairsPath: pairsPath)
    }
    let transform = TransformConfig.evaluation(outputSize: config.model.vision.imageSize,
                                               normalization: try config.normalization())
    return BatchAssembler(dataset: dataset, transform: transform, text: text, preprocessing: config.data.preprocessing)
}

/// The pairs file of `split` given a file or a directory: a directory is searched for
/// `<split>.pairs.jsonl`, then `<split>.jsonl`, then `pairs-<split>.jsonl`. Returns ""
/// for an empty argument.
public func resolvePairsPath(_ fileOrDirectory: String, split: String) throws -> String {
    guard !fileOrDirectory.isEmpty else { return "" }
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: fileOrDirectory, isDirectory: &isDirectory) else {
        throw TrainingError("pairs '\(fileOrDirectory)' does not exist: pass a pairs file or the directory clipit pair wrote")
    }
    guard isDirectory.boolValue else { return fileOrDirectory }
    let candidates = ["\(split).pairs.jsonl", "\(split).jsonl", "pairs-\(split).jsonl"].map { fileOrDirectory + "/" + $0 }
    guard let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
        throw TrainingError("no pairs file for split '\(split)' in '\(fileOrDirectory)' (looked for "
                            + candidates.map { ($0 as NSString).lastPathComponent }.joined(separator: ", ") + ")")
    }
    return found
}

/// Stage 3 on a checkpoint: loads its model, folds LoRA into the base weights unless
/// `mergeLoRA` is false, and evaluates it on `dataset` (`evaluationAssembler`, `evaluate`).
public func evaluateCheckpoint(_ path: String, on dataset: DatasetFile, pairsPath: String?, reportsPath: String?,
                               mergeLoRA: Bool = true, comm: any Communicator, batchSize: Int) throws
    -> (result: EvaluationResult, model: any TrainableModel, header: Checkpoint.Header) {
    let (model, header) = try Checkpoint.loadModel(path)
    if mergeLoRA { model.mergeLoRA() }
    let assembler = try evaluationAssembler(for: model, header: header, dataset: dataset, pairsPath: pairsPath,
                                            reportsPath: reportsPath)
    return (try evaluate(model, on: assembler, comm: comm, batchSize: batchSize), model, header)
}
