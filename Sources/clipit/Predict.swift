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
        abstract: "Write a checkpoint's predictions for images: a .cds file, a folder of images or one image (JSON lines).",
        discussion: """
            --images FILE.cds: one line per image, in file order: {"index":i,"id":"…","prediction":k,\
            "class":"…","probabilities":[…],"label":y} (id when the file has ids; label is the \
            file's label, and the balanced accuracy against the labels is printed; a file of \
            unlabelled images, such as the unlabeled.cds of clipit synth --unlabeled, has no \
            label key and no accuracy). \
            --images FOLDER or IMAGE: unlabelled images (every image file below the folder, in \
            sorted path order): {"id":"relative/path.png","prediction":k,"class":"…",\
            "probabilities":[…]}, no labels needed; each image goes through the checkpoint's \
            evaluation transform. Image-only, LoRA merged into the base weights. Runs on one rank \
            or under mpirun (the ranks split the images; rank 0 writes the file).
            """)

    @OptionGroup var communicator: CommunicatorOptions

    @OptionGroup var model: CheckpointOptions
    private var checkpoint: String { model.checkpoint }
    private var pairs: String? { model.pairs }
    private var reports: String? { model.reports }
    private var batch: Int { model.batch }

    @Option(help: "Images to classify: a .cds file, a folder of image files, or one image file.")
    var images: String

    @Option(help: "Output file (.jsonl): one prediction per image.")
    var out: String

    func run() throws {
        guard images.lowercased().hasSuffix(".cds") else { return try predictImageFiles() }
        try communicator.run { comm in
            let dataset = try DatasetFile(path: images)
            let pairsPath = try pairs.map { try resolvePairsPath($0, split: dataset.split) }
            let (p, header) = try predictCheckpoint(
                checkpoint, on: dataset, pairsPath: pairsPath, reportsPath: reports, comm: comm, batchSize: batch,
                progress: ItemProgress.callback("predict: images of rank 0", unit: "img/s", enabled: comm.rank == 0))
            guard comm.rank == 0 else { return }
            let c = p.classCount
            let predictions = argmaxPredictions(scores: p.scores, classCount: c)
            var text = ""
            for (row, index) in p.globalIndices.enumerated() {
                var object: [String: Any] = [
                    "index": index, "prediction": predictions[row], "class": header.classNames[predictions[row]],
                    "probabilities": p.scores[row * c ..< (row + 1) * c].map { Double($0) },
                ]
                if dataset.isLabelled { object["label"] = p.labels[row] }
                if let ids = dataset.ids { object["id"] = ids[index] }
                let line = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
                text += String(decoding: line, as: UTF8.self) + "\n"
            }
            try AtomicFileWriter.write(Data(text.utf8), to: out)
            if dataset.isLabelled {
                print("predict: \(p.sampleCount) images → \(out) (balanced accuracy against the file's labels "
                      + String(format: "%.2f%%)", p.report(classNames: dataset.classNames).balancedAccuracy * 100))
            } else {
                print("predict: \(p.sampleCount) unlabelled images → \(out); predicted "
                      + predictedCounts(predictions, classNames: header.classNames))
            }
        }
    }

    /// Unlabelled image files: one line per image with its id, class and probabilities.
    private func predictImageFiles() throws {
        try communicator.run { comm in
            let files = try ImageFiles.list(images)
            let (model, header) = try Checkpoint.loadModel(checkpoint)
            model.mergeLoRA()
            let predictions = try predictImages(model, header: header, files: files, comm: comm, batchSize: batch,
                                                progress: ItemProgress.callback("predict: images of rank 0", unit: "img/s",
                                                                                enabled: comm.rank == 0))
            guard comm.rank == 0 else { return }
            var text = ""
            for p in predictions {
                let object: [String: Any] = ["id": p.id, "prediction": p.predictedClass,
                                             "class": header.classNames[p.predictedClass],
                                             "probabilities": p.probabilities.map { Double($0) }]
                let line = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
                text += String(decoding: line, as: UTF8.self) + "\n"
            }
            try AtomicFileWriter.write(Data(text.utf8), to: out)
            print("predict: \(predictions.count) images → \(out); predicted "
                  + predictedCounts(predictions.map(\.predictedClass), classNames: header.classNames))
        }
    }

    /// "name count, …" of the predicted classes, every class listed.
    private func predictedCounts(_ predicted: [Int], classNames: [String]) -> String {
        let counts = Dictionary(grouping: predicted, by: { $0 }).mapValues(\.count)
        return classNames.indices.map { "\(classNames[$0]) \(counts[$0] ?? 0)" }.joined(separator: ", ")
    }
}
