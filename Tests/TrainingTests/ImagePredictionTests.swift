import Datasets
import Distributed
import Formats
import Foundation
@testable import Model
import TestSupport
@testable import Training
import XCTest

/// Prediction on unlabelled image files: the same probabilities as evaluating the same
/// pixels from a `.cds` file (to float rounding: other batch sizes), on one rank and on
/// three; ids are the relative paths.
final class ImagePredictionTests: XCTestCase {
    var data: TinyTrainingData!

    override func setUpWithError() throws { data = try TinyTrainingData() }
    override func tearDown() { data.remove() }

    func testAFolderOfImagesPredictsLikeTheSameImagesInACDSFile() throws {
        let run = data.directory + "/run"
        let config = try data.config(method: "unimodal-lora", overrides: ["train.max_steps=3"])
        _ = try Trainer(config: config, comm: SingleRankCommunicator(), outputDirectory: run, showProgress: false).run()

        // The validation images as PNG files in nested folders, without labels.
        let val = try DatasetFile(path: data.val), folder = data.directory + "/unlabelled"
        for i in 0..<val.count {
            let subfolder = folder + (i % 2 == 0 ? "/a" : "/b/c")
            try FileManager.default.createDirectory(atPath: subfolder, withIntermediateDirectories: true)
            try PNGWriter.write(Array(val.imageBytes(at: i)), width: val.width, height: val.height, channels: 3,
                                to: subfolder + String(format: "/%03d.png", i))
        }
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: folder + "/notes.txt"))
        let files = try ImageFiles.list(folder)
        XCTAssertEqual(files.count, val.count, "the text file is skipped")
        XCTAssertEqual(files.first?.id, "a/000.png")

        let (model, header) = try Checkpoint.loadModel(run + "/last.safetensors")
        model.mergeLoRA()
        let reference = try evaluateCheckpoint(run + "/last.safetensors", on: val, pairsPath: nil, reportsPath: nil,
                                               comm: SingleRankCommunicator(), batchSize: 4).result.predictions
        let single = try predictImages(model, header: header, files: files, comm: SingleRankCommunicator(), batchSize: 4)
        let threaded = try ThreadRankCommunicator.run(size: 3) { comm -> [ImagePrediction] in
            let (m, h) = try Checkpoint.loadModel(run + "/last.safetensors")
            m.mergeLoRA()
            return try predictImages(m, header: h, files: files, comm: comm, batchSize: 4)
        }
        XCTAssertEqual(threaded[1].count, 0, "only rank 0 returns the predictions")
        for (k, prediction) in single.enumerated() {
            let i = Int((prediction.id as NSString).lastPathComponent.prefix(3))!
            let c = reference.classCount
            let expected = Array(reference.scores[i * c ..< (i + 1) * c])
            for (p, q) in zip(prediction.probabilities, expected) { XCTAssertEqual(p, q, accuracy: 1e-6, prediction.id) }
            // Other rank counts predict other batch sizes: GEMMs of other row counts, float rounding only.
            for (p, q) in zip(threaded[0][k].probabilities, prediction.probabilities) {
                XCTAssertEqual(p, q, accuracy: 1e-6, "3 ranks, \(prediction.id)")
            }
            XCTAssertEqual(threaded[0][k].id, prediction.id)
        }
    }

    func testAPathThatIsNoImageNamesItself() throws {
        let text = data.directory + "/notes.txt"
        try Data("x".utf8).write(to: URL(fileURLWithPath: text))
        XCTAssertThrowsError(try ImageFiles.list(text)) { XCTAssertTrue("\($0)".contains(text), "\($0)") }
        XCTAssertThrowsError(try ImageFiles.list(data.directory + "/missing")) {
            XCTAssertTrue("\($0)".contains("no such file or folder"), "\($0)")
        }
    }
}
