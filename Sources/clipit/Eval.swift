import ArgumentParser
import DataParallel
import Datasets
import Distributed
import Evaluation
import Formats
import Foundation
import Kernels
import Reporting
import Training

/// `clipit eval`: Stage 3 (image-only inference, LoRA merged) and the Ω score.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate a checkpoint on a labelled split: image-only inference with LoRA merged.",
        discussion: """
            Prints and writes (JSON) balanced accuracy (the primary metric), accuracy, macro-F1, \
            macro one-vs-rest AUROC, per-class metrics and the confusion matrix. With \
            --text-checkpoint (a text-only model) and --pairs (the split's pairs), also the \
            text-only model's metrics and the Ω score: the fraction of samples the text-only \
            model gets right and the image model gets wrong. Runs on one rank or under mpirun.
            """)

    @OptionGroup var communicator: CommunicatorOptions

    @OptionGroup var model: CheckpointOptions
    private var checkpoint: String { model.checkpoint }
    private var pairs: String? { model.pairs }
    private var reports: String? { model.reports }
    private var batch: Int { model.batch }

    @Option(help: "Labelled .cds file, or a directory holding test.cds.")
    var data: String

    @Option(help: "Checkpoint of a text-only model, for the Ω score.")
    var textCheckpoint: String?

    @Option(help: "Output file (.json) of the results.")
    var out: String?

    @Option(help: "Write the results here as one self-contained HTML page (metrics, confusion matrix, per-class accuracy, training curves from the checkpoint folder's metrics.jsonl).")
    var html: String?

    @Flag(help: "Keep LoRA unmerged (for checking that merging does not change predictions).")
    var noMerge = false

    func run() throws {
        try communicator.run { comm in try evaluateCheckpoints(comm) }
    }

    private func evaluateCheckpoints(_ comm: any Communicator) throws {
        let dataPath = try DataFolder.datasetPath(data, split: "test")
        let dataset = try DatasetFile(path: dataPath)
        let pairsPath = try pairs.map { try resolvePairsPath($0, split: dataset.split) }

        var clock = Stopwatch()
        let (result, _, header) = try evaluateCheckpoint(
            checkpoint, on: dataset, pairsPath: pairsPath, reportsPath: reports, mergeLoRA: !noMerge, comm: comm,
            batchSize: batch, progress: ItemProgress.callback("eval: images of rank 0", unit: "img/s", enabled: comm.rank == 0))

        var textResult: EvaluationResult?
        var omega: Double?
        if let textCheckpoint {
            let textHeader = try Checkpoint.open(textCheckpoint).header
            guard !textHeader.config.method.readsImages else {
                throw TrainingError("--text-checkpoint '\(textCheckpoint)' is a \(textHeader.config.method) model; "
                                    + "pass a checkpoint trained with --method text-only")
            }
            let text = try evaluateCheckpoint(textCheckpoint, on: dataset, pairsPath: pairsPath, reportsPath: reports,
                                              comm: comm, batchSize: batch).result
            let c = result.predictions.classCount
            omega = omegaScore(labels: result.predictions.labels,
                               textPredictions: argmaxPredictions(scores: text.predictions.scores, classCount: c),
                               visionPredictions: argmaxPredictions(scores: result.predictions.scores, classCount: c))
            textResult = text
        }
        let seconds = clock.lap()
        guard comm.rank == 0 else { return }

        print("eval: \(checkpoint) (\(header.config.method), seed \(header.config.seed)) on \(dataPath)"
              + (noMerge ? "" : ", LoRA merged"))
        print(result.report.renderTable(), terminator: "")
        if let textResult, let omega {
            print("\ntext-only model \(textCheckpoint!):")
            print(textResult.report.renderTable(), terminator: "")
            print(String(format: "\nOmega (text right, image wrong): %.2f%%", omega * 100))
        }
        if let out {
            var object: [String: Any] = [
                "checkpoint": checkpoint, "data": dataPath, "method": header.config.method.description, "seed": header.config.seed,
                "step": header.state.step, "lora_merged": !noMerge, "ranks": comm.size, "seconds": seconds,
                "loss": result.loss, "metrics": try jsonObject(result.report),
            ]
            if let textResult, let omega {
                object["text_checkpoint"] = textCheckpoint!
                object["text_metrics"] = try jsonObject(textResult.report)
                object["omega"] = omega
            }
            try AtomicFileWriter.writeJSONObject(object, to: out)
            print("eval: wrote \(out)")
        }
        if let html {
            let evaluation = TestEvaluation(method: header.config.method.description, seed: header.config.seed,
                                            step: header.state.step, checkpoint: checkpoint, metrics: result.report,
                                            textMetrics: textResult?.report, omega: omega)
            let page = EvaluationPage(checkpoint: checkpoint, data: dataPath, evaluation: evaluation,
                                      log: try TrainingLog.beside(checkpoint))
            try AtomicFileWriter.write(Data(page.html().utf8), to: html)
            print("eval: wrote \(html)")
        }
    }
}

/// An Encodable value as a JSON object (for embedding in a larger document).
func jsonObject<T: Encodable>(_ value: T) throws -> Any {
    try JSONSerialization.jsonObject(with: try ProjectJSON.encoder(pretty: false).encode(value))
}
