import DataParallel
import Datasets
import Distributed
import Evaluation
import Foundation
import Import
import Model
import Retrieval

// Stage 3 on a checkpoint: its model, the data it needs, and the evaluation.

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
        let method = config.method
        text = try PairedText(corpus: try ReportCorpus(path: reports), pairsPath: pairsPath, imageCount: dataset.count,
                              encoding: encoding, wordDropFraction: method.wordDropFraction,
                              seed: UInt64(truncatingIfNeeded: config.seed))
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

/// The pairs file of `split` in `folder` when `folder` is a folder that has one; nil for a
/// file or a folder without it.
public func resolvePairsPath(inFolder folder: String, split: String) throws -> String? {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else { return nil }
    return try? resolvePairsPath(folder, split: split)
}

/// Stage 3 on a checkpoint: loads its model, folds LoRA into the base weights unless
/// `mergeLoRA` is false, and evaluates it on `dataset` (`evaluationAssembler`, `evaluate`),
/// which must be labelled.
public func evaluateCheckpoint(_ path: String, on dataset: DatasetFile, pairsPath: String?, reportsPath: String?,
                               mergeLoRA: Bool = true, comm: any Communicator, batchSize: Int,
                               progress: ((_ done: Int, _ total: Int) -> Void)? = nil) throws
    -> (result: EvaluationResult, model: any TrainableModel, header: Checkpoint.Header) {
    try dataset.requireLabels(for: "evaluated")
    let (model, header, assembler) = try loadForPrediction(path, on: dataset, pairsPath: pairsPath, reportsPath: reportsPath,
                                                           mergeLoRA: mergeLoRA)
    return (try evaluate(model, on: assembler, comm: comm, batchSize: batchSize, progress: progress), model, header)
}

/// A checkpoint's predictions (softmax probabilities, LoRA merged) for every image of
/// `dataset`, labelled or not, without metrics (`predict`).
public func predictCheckpoint(_ path: String, on dataset: DatasetFile, pairsPath: String?, reportsPath: String?,
                              comm: any Communicator, batchSize: Int,
                              progress: ((_ done: Int, _ total: Int) -> Void)? = nil) throws
    -> (predictions: GatheredPredictions, header: Checkpoint.Header) {
    let (model, header, assembler) = try loadForPrediction(path, on: dataset, pairsPath: pairsPath, reportsPath: reportsPath,
                                                           mergeLoRA: true)
    return (try predict(model, on: assembler, comm: comm, batchSize: batchSize, progress: progress), header)
}

/// The checkpoint's model (LoRA merged when `mergeLoRA`) and its assembler for `dataset`.
private func loadForPrediction(_ path: String, on dataset: DatasetFile, pairsPath: String?, reportsPath: String?,
                               mergeLoRA: Bool) throws
    -> (model: any TrainableModel, header: Checkpoint.Header, assembler: BatchAssembler) {
    let (model, header) = try Checkpoint.loadModel(path)
    if mergeLoRA { model.mergeLoRA() }
    let assembler = try evaluationAssembler(for: model, header: header, dataset: dataset, pairsPath: pairsPath,
                                            reportsPath: reportsPath)
    return (model, header, assembler)
}

extension PairedText {
    /// The paired reports of a split: the pairs file `pairsPath` (Stage 1's output) read
    /// and checked against the split's `imageCount` and the corpus, every report cleaned,
    /// word-dropped and encoded (`PairedText.init(corpus:cleaned:reportOfImage:…)`).
    public init(corpus: ReportCorpus, cleaned: [String]? = nil, pairsPath: String, imageCount: Int,
                encoding: any TextEncoding, wordDropFraction: Double, seed: UInt64) throws {
        let pairs = try PairsFile(contentsOf: URL(fileURLWithPath: pairsPath))
        try Self.check(pairs, imageCount: imageCount, reportCount: corpus.count, pairsPath: pairsPath)
        self.init(corpus: corpus, cleaned: cleaned, reportOfImage: pairs.reportIndices, encoding: encoding,
                  wordDropFraction: wordDropFraction, seed: seed)
    }

    /// The same encoded reports paired with another split's images through its pairs file.
    public func paired(withPairsFile pairsPath: String, imageCount: Int) throws -> PairedText {
        let pairs = try PairsFile(contentsOf: URL(fileURLWithPath: pairsPath))
        try Self.check(pairs, imageCount: imageCount, reportCount: reportCount, pairsPath: pairsPath)
        return paired(with: pairs.reportIndices)
    }

    private static func check(_ pairs: PairsFile, imageCount: Int, reportCount: Int, pairsPath: String) throws {
        guard pairs.imageCount == imageCount else {
            throw TrainingError("pairs file '\(pairsPath)' has \(pairs.imageCount) images but the dataset has "
                                + "\(imageCount): pair the same split again (clipit pair) or pass the matching pairs file")
        }
        guard pairs.reportCount == reportCount else {
            throw TrainingError("pairs file '\(pairsPath)' indexes \(pairs.reportCount) reports but the corpus has "
                                + "\(reportCount): pass the corpus the pairs were made from (--reports)")
        }
    }
}
