import DataParallel
import Datasets
import Distributed
import Foundation
@testable import Model
@testable import Training
import XCTest

/// A frozen text tower's report embeddings, computed once per run: the step with the
/// cached rows is the step with the tower run on the tokens (to float rounding: other GEMM
/// row counts), and the trainer uses the cache exactly for the methods whose text does not train.
final class FrozenTextCacheTests: XCTestCase {
    var data: TinyTrainingData!

    override func setUpWithError() throws { data = try TinyTrainingData() }
    override func tearDown() { data.remove() }

    func testCachedReportEmbeddingsGiveTheSameLossAndGradients() throws {
        let config = try data.config(method: "no-text-lora")
        let model = try XCTUnwrap(try makeModel(config, classes: 3) as? CLIPITModel)
        XCTAssertTrue(model.textTowerIsFrozen)
        model.reserveActivations(batch: 8)
        let inputs = try TrainingData(config: config).assemblers(for: model, resumedTokenizer: nil)
        let text = try XCTUnwrap(inputs.train.text)
        let table = text.tokens.withUnsafeBufferPointer {
            model.embedReports(tokens: $0.baseAddress!, count: text.reportCount, chunk: 8)
        }
        let items = [3, 0, 7, 11, 5]
        model.isTraining = true

        model.store.zeroGradients()
        let plain = model.forwardBackward(inputs.train.assemble(items, inputs: model.trainingInputs, seed: 1, epoch: 0),
                                          globalBatch: 5)
        let plainGradients = Array(UnsafeBufferPointer(start: model.store.gradients.data, count: model.store.trainableCount))

        inputs.train.reportEmbeddings = (table, model.config.text.outputDim)
        let batch = inputs.train.assemble(items, inputs: model.trainingInputs, seed: 1, epoch: 0)
        XCTAssertNil(batch.tokens)
        XCTAssertNotNil(batch.textEmbeddings)
        model.store.zeroGradients()
        let cached = model.forwardBackward(batch, globalBatch: 5)
        let cachedGradients = Array(UnsafeBufferPointer(start: model.store.gradients.data, count: model.store.trainableCount))

        XCTAssertEqual(cached.distill, plain.distill, accuracy: 1e-6 * max(1, abs(plain.distill)))
        XCTAssertEqual(cached.total, plain.total, accuracy: 1e-6 * max(1, abs(plain.total)))
        let scale = plainGradients.map(abs).max() ?? 1
        for (a, b) in zip(cachedGradients, plainGradients) { XCTAssertEqual(a, b, accuracy: 1e-5 * scale) }
    }

    func testTheTrainerCachesOnlyForAFrozenTextTower() throws {
        for (method, expected) in [("no-text-lora", true), ("clipit", false)] {
            let config = try data.config(method: method, overrides: ["train.max_steps=2"])
            let trainer = try Trainer(config: config, comm: SingleRankCommunicator(),
                                      outputDirectory: data.directory + "/\(method)", showProgress: false)
            XCTAssertEqual(trainer.trainAssembler.reportEmbeddings != nil, expected, method)
            XCTAssertEqual(try trainer.run().steps, 2)
        }
    }
}
