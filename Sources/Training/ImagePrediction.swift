import Datasets
import Distributed
import Evaluation
import Foundation
import Kernels
import Model
import Retrieval

/// A checkpoint's prediction for one image file.
public struct ImagePrediction: Sendable {
    /// The file's path relative to the folder predicted on (or its name).
    public var id: String
    public var predictedClass: Int
    /// Softmax probabilities over the checkpoint's classes.
    public var probabilities: [Float]
}

/// Predicts every image file of `files` (`ImageFiles.list`) with an image model, no labels
/// needed, data-parallel: each rank decodes and predicts its contiguous share
/// (`evenSlice`), in batches of at most ⌈`batchSize` / ranks⌉, through the checkpoint's
/// evaluation transform (its `data.preprocessing`, else resize and centre crop to the
/// model's image size with its normalisation); rank 0 returns every prediction in file
/// order, the other ranks an empty array. `progress` is told this rank's files done.
public func predictImages(_ model: any TrainableModel, header: Checkpoint.Header, files: [(id: String, path: String)],
                          comm: any Communicator, batchSize: Int,
                          progress: ((_ done: Int, _ total: Int) -> Void)? = nil) throws -> [ImagePrediction] {
    let config = header.config
    guard model.predictionInputs == .images else {
        throw TrainingError("the \(config.method) model reads each image's paired report: predict on a .cds file "
                            + "with --pairs instead of image files")
    }
    let size = config.model.vision.imageSize, classes = model.classes, perImage = 3 * size * size
    let preprocessing = config.data.preprocessing
    let transformer = ImageTransformer(config: .evaluation(outputSize: size, normalization: try config.normalization()))
    let mine = evenSlice(count: files.count, rank: comm.rank, size: comm.size)
    let localBatch = max(1, (batchSize + comm.size - 1) / comm.size)
    model.reserveActivations(batch: min(localBatch, max(mine.count, 1)))
    let images = Tensor(shape: [localBatch * perImage])
    let labels = [Int32](repeating: 0, count: localBatch)
    var probabilities: [Float] = []
    probabilities.reserveCapacity(mine.count * classes)
    for start in stride(from: mine.lowerBound, to: mine.upperBound, by: localBatch) {
        let chunk = start ..< min(start + localBatch, mine.upperBound)
        for (b, i) in chunk.enumerated() {
            let (pixels, height, width) = try ImageFiles.decodeRGB(files[i].path)
            pixels.withUnsafeBufferPointer { source in
                if let preprocessing {
                    preprocessing.apply(source, height: height, width: width, channels: 3, into: images.data + b * perImage)
                } else {
                    transformer.apply(source, height: height, width: width, channels: 3, seed: 0, epoch: 0, index: i,
                                      into: images.data + b * perImage)
                }
            }
        }
        let logits = labels.withUnsafeBufferPointer { l in
            model.predict(ModelBatch(count: chunk.count, images: UnsafePointer(images.data), tokens: nil,
                                     labels: l.baseAddress))
        }
        for b in 0..<chunk.count { appendSoftmax(logits + b * classes, count: classes, to: &probabilities) }
        progress?(chunk.upperBound - mine.lowerBound, mine.count)
    }
    guard let all = try comm.gatherv(probabilities, root: 0)?.values else { return [] }
    let predicted = argmaxPredictions(scores: all, classCount: classes)
    return files.enumerated().map { i, file in
        ImagePrediction(id: file.id, predictedClass: predicted[i], probabilities: Array(all[i * classes ..< (i + 1) * classes]))
    }
}
