import DataParallel
import Datasets
import Distributed
import Evaluation
import Foundation
import Training
import XCTest

/// A `.cds` file of unlabelled images (`"labelled": false`) is refused by training,
/// validation and evaluation, naming the file, and taken by prediction.
final class UnlabelledFileTests: XCTestCase {
    func testTrainingAndEvaluationRefuseUnlabelledImagesAndPredictionTakesThem() throws {
        let data = try TinyTrainingData(trainCount: 6, valCount: 5)
        defer { data.remove() }
        // The validation images again, stored without labels.
        let val = try DatasetFile(path: data.val)
        let pool = data.directory + "/unlabeled.cds"
        let writer = try DatasetWriter(path: pool, height: val.height, width: val.width, channels: val.channels,
                                       count: val.count, info: DatasetInfo(classNames: val.classNames, split: "unlabeled",
                                                                           source: "unit test", labelled: false))
        for i in 0..<val.count { try writer.append(image: val.imageBytes(at: i)) }
        try writer.finish()
        let comm = SingleRankCommunicator()

        func assertRefused(_ what: String, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
            XCTAssertThrowsError(try body(), file: file, line: line) { error in
                XCTAssertEqual((error as? DatasetError)?.kind, .unlabelled, "\(error)", file: file, line: line)
                for fragment in [pool, "holds unlabelled images", what, "data.unlabeled"] {
                    XCTAssertTrue("\(error)".contains(fragment), "'\(error)' lacks '\(fragment)'", file: file, line: line)
                }
            }
        }
        for key in ["data.train", "data.val"] {
            let config = try data.config(method: "unimodal-lora", overrides: ["\(key)=\(pool)"])
            assertRefused(key) {
                _ = try Trainer(config: config, comm: comm, outputDirectory: data.directory + "/run", showProgress: false)
            }
        }

        let config = try data.config(method: "unimodal-lora")
        let model = try Trainer(config: config, comm: comm, outputDirectory: data.directory + "/run", showProgress: false).model
        let transform = TransformConfig.evaluation(outputSize: config.model.vision.imageSize,
                                                   normalization: try config.normalization())
        let unlabelled = BatchAssembler(dataset: try DatasetFile(path: pool), transform: transform, text: nil)
        assertRefused("evaluated") { _ = try evaluate(model, on: unlabelled, comm: comm, batchSize: 4) }

        let predicted = try predict(model, on: unlabelled, comm: comm, batchSize: 4)
        let evaluated = try evaluate(model, on: BatchAssembler(dataset: val, transform: transform, text: nil), comm: comm,
                                     batchSize: 4)
        XCTAssertEqual(predicted.labels, [Int](repeating: -1, count: val.count))
        XCTAssertEqual(predicted.globalIndices, Array(0..<val.count))
        XCTAssertEqual(predicted.scores, evaluated.predictions.scores, "the same images, the same probabilities")
    }
}
