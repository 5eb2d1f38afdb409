import ArgumentParser
import DataParallel
import Datasets
import Evaluation
import Formats
import Foundation
import Training

/// `clipit predict`: image-only predictions of a checkpoint (LoRA merged) as JSON lines.
struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Write a checkpoint's predictions for every image of a .cds file (JSON lines).",
        discussion: """
            One line per image, in file order: {"index":i,"id":"…","prediction":k,"class":"…",\
            "probabilities":[…],"label":y} (id when the file has ids; label is the file's \
            label). Image-only, LoRA merged into the base weights. Runs on one rank or under \
            mpirun (the ranks split the images; rank 0 writes the file).
            """)

    @OptionGroup var communicator: CommunicatorOptions

    @OptionGroup var model: CheckpointOptions
    private var checkpoint: String { model.checkpoint }
    private var pairs: String? { model.pairs }
    private var reports: String? { model.reports }
    private var batch: Int { model.batch }

    @Option(help: "Images to classify (.cds).")
    var images: String

    @Option(help: "Output file (.jsonl): one prediction per image.")
    var out: String

    func run() throws {
        try communicator.run { comm in
            let dataset = try DatasetFile(path: images)
            let pairsPath = try pairs.map { try resolvePairsPath($0, split: dataset.split) }
            let (result, _, header) = try evaluateCheckpoint(
                checkpoint, on: dataset, pairsPath: pairsPath, reportsPath: reports, comm: comm, batchSize: batch,
                progress: ItemProgress.callback("predict: images of rank 0", unit: "img/s", enabled: comm.rank == 0))
            guard comm.rank == 0 else { return }
            let p = result.predictions, c = p.classCount
            let predictions = argmaxPredictions(scores: p.scores, classCount: c)
            var text = ""
            for (row, index) in p.globalIndices.enumerated() {
                var object: [String: Any] = [
                    "index": index, "prediction": predictions[row], "class": header.classNames[predictions[row]],
                    "probabilities": p.scores[row * c ..< (row + 1) * c].map { Double($0) }, "label": p.labels[row],
                ]
                if let ids = dataset.ids { object["id"] = ids[index] }
                let line = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
                text += String(decoding: line, as: UTF8.self) + "\n"
            }
            try AtomicFileWriter.write(Data(text.utf8), to: out)
            print("predict: \(p.sampleCount) images → \(out) (balanced accuracy against the file's labels "
                  + String(format: "%.2f%%)", result.report.balancedAccuracy * 100))
        }
    }
}
