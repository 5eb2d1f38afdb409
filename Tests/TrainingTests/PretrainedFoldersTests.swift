@testable import DataParallel
import Datasets
import Distributed
@testable import Evaluation
import Formats
import Foundation
import Import
import Kernels
import Model
@testable import Retrieval
import TestSupport
@testable import Training
import XCTest

/// The tiny pretrained model folders of Tests/ImportTests/Fixtures (HF CLIP, open_clip,
/// timm), used as Stage-1 retrievers and as Stage-2 towers.
enum PretrainedFolderFixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("ImportTests").appendingPathComponent("Fixtures")

    static func path(_ name: String) throws -> String {
        let p = root.appendingPathComponent(name).path
        guard FileManager.default.fileExists(atPath: p) else {
            throw XCTSkip("fixture folder \(name) not generated (python reference/make_import_fixtures.py)")
        }
        return p
    }
}

final class PretrainedFoldersTests: XCTestCase {
    var data: TinyTrainingData!

    override func setUpWithError() throws { data = try TinyTrainingData(trainCount: 8, valCount: 6, reportCount: 6) }
    override func tearDown() { data.remove() }

    /// What `clipit embed --normalize` computes for every image of `dataset` and every
    /// (cleaned) report: the folder's preprocessing, tokenizer and towers.
    func embedLikeClipitEmbed(_ folder: String, dataset: DatasetFile, reports: [String]) throws
        -> (images: [Float], reports: [Float], width: Int) {
        let model = try PretrainedModel(directory: folder)
        let encoders = try PretrainedEncoders(model, vision: true, text: true)
        let pre = try XCTUnwrap(model.preprocessing)
        var pixels = [Float](repeating: 0, count: dataset.count * pre.outputCount)
        pixels.withUnsafeMutableBufferPointer { buffer in
            for i in 0..<dataset.count {
                pre.apply(dataset.imageBytes(at: i), height: dataset.height, width: dataset.width,
                          channels: dataset.channels, into: buffer.baseAddress! + i * pre.outputCount)
            }
        }
        let width = try XCTUnwrap(encoders.imageEmbeddingDim)
        var images = pixels.withUnsafeBufferPointer { encoders.embedImages($0.baseAddress!, batch: dataset.count) }
        var texts = encoders.embedTexts(reports)
        normalizeRows(&images, width: width)
        normalizeRows(&texts, width: width)
        return (images, texts, width)
    }

    /// `clipit pair --retriever FOLDER`: the same top-1 report as a brute-force cosine over
    /// the folder's own embeddings, on one rank and on two.
    func testPairingWithAModelFolderMatchesBruteForceCosine() throws {
        for family in ["hf_clip", "open_clip"] {
            let folder = try PretrainedFolderFixtures.path(family)
            let dataset = try DatasetFile(path: data.train)
            let corpus = try ReportCorpus(path: data.reports)
            let cleaned = corpus.texts.map(ReportCleaning.clean)
            let brute = try embedLikeClipitEmbed(folder, dataset: dataset, reports: cleaned)
            let d = brute.width
            var expected: [Int] = [], expectedScores: [Float] = [], expectedTop3: [[Int]] = []
            for i in 0..<dataset.count {
                var scores: [Float] = []
                for j in 0..<corpus.count {
                    var s: Float = 0
                    for k in 0..<d { s += brute.images[i * d + k] * brute.reports[j * d + k] }
                    scores.append(s)
                }
                let ranked = scores.indices.sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }
                expected.append(ranked[0])
                expectedScores.append(scores[ranked[0]])
                expectedTop3.append(Array(ranked.prefix(3)))
            }

            let options = PairingOptions(strategy: .top1, seed: 0, recordedK: 3)
            let single = try PairingPipeline(retrieverPath: folder, comm: SingleRankCommunicator(), batchSize: 3)
            XCTAssertTrue(single.encoder is PretrainedFolderEncoder, family)
            let pairs = try single.pair(dataset, split: "train", localReports: single.embedReports(corpus),
                                        reportLabels: nil, options: options)
            XCTAssertEqual(pairs.reportIndices, expected, "\(family): top-1 differs from brute-force cosine")
            XCTAssertEqual(pairs.records.map(\.topReports), expectedTop3, "\(family): top-3 order differs")
            for (record, score) in zip(pairs.records, expectedScores) {
                XCTAssertEqual(record.score, score, accuracy: 1e-5, family)
            }

            let ranked = try ThreadRankCommunicator.run(size: 2) { comm -> [Int] in
                let pipeline = try PairingPipeline(retrieverPath: folder, comm: comm, batchSize: 2)
                return try pipeline.pair(dataset, split: "train", localReports: pipeline.embedReports(corpus),
                                         reportLabels: nil, options: options).reportIndices
            }
            XCTAssertEqual(ranked, [expected, expected], "\(family): two ranks pair differently")
        }
    }

    func testATimmFolderCannotPair() throws {
        let folder = try PretrainedFolderFixtures.path("timm")
        XCTAssertThrowsError(try PairingPipeline(retrieverPath: folder, comm: SingleRankCommunicator())) { error in
            XCTAssertTrue("\(error)".contains("one tower"), "\(error)")
        }
    }

    /// `model.init_vision` = a timm folder, `model.init_text` = an HF CLIP folder: the
    /// towers, tokenizer and preprocessing come from the folders, the initial features are
    /// the imported model's, training runs, and the checkpoint evaluates after a reload.
    func testTrainingWithATimmBackboneAndACLIPTextTower() throws {
        let timm = try PretrainedFolderFixtures.path("timm"), clip = try PretrainedFolderFixtures.path("hf_clip")
        let config = try data.config(overrides: [
            "model.init_vision=\(timm)", "model.init_text=\(clip)", "train.epochs=1", "train.max_steps=2",
            "train.validations_per_epoch=1",
        ])
        let run = data.directory + "/run"
        let trainer = try Trainer(config: config, comm: SingleRankCommunicator(), outputDirectory: run, showProgress: false)

        // The architecture, tokenizer and preprocessing of the folders.
        let timmModel = try PretrainedModel(directory: timm), clipModel = try PretrainedModel(directory: clip)
        var backbone = try XCTUnwrap(timmModel.vision)
        backbone.projectionDim = nil
        XCTAssertEqual(trainer.config.model.vision, backbone)
        XCTAssertEqual(trainer.config.model.text, clipModel.text)
        XCTAssertEqual(trainer.config.data.tokenizer, .clip)
        XCTAssertEqual(trainer.config.data.preprocessing, timmModel.preprocessing)
        let encoding = try XCTUnwrap(trainer.tokenizer as? CLIPTextEncoding)
        let corpus = try ReportCorpus(path: data.reports)
        let tokenizer = try clipModel.makeTokenizer()
        let report0 = ReportCleaning.clean(corpus.texts[0])
        XCTAssertEqual(encoding.encode(report0), tokenizer.tokenize(report0))

        // Initial features: the imported towers on the same preprocessed inputs.
        let model = try XCTUnwrap(trainer.model as? CLIPITModel)
        let dataset = try DatasetFile(path: data.val)
        let pre = try XCTUnwrap(timmModel.preprocessing)
        var pixels = [Float](repeating: 0, count: 3 * pre.outputCount)
        pixels.withUnsafeMutableBufferPointer { buffer in
            for i in 0..<3 {
                pre.apply(dataset.imageBytes(at: i), height: dataset.height, width: dataset.width,
                          channels: dataset.channels, into: buffer.baseAddress! + i * pre.outputCount)
            }
        }
        model.isTraining = false
        let imported = try PretrainedEncoders(timmModel, vision: true, text: false)
        let want = pixels.withUnsafeBufferPointer { imported.embedImages($0.baseAddress!, batch: 3) }
        let got = pixels.withUnsafeBufferPointer { p -> [Float] in
            let out = model.vision.forward(images: p.baseAddress!, batch: 3)
            return Array(UnsafeBufferPointer(start: out, count: want.count))
        }
        XCTAssertLessThan(maxRelativeDifference(got, want), 1e-5, "initial vision features differ from the import")
        let importedText = try PretrainedEncoders(clipModel, vision: false, text: true)
        let ids = tokenizer.tokenize([report0, ReportCleaning.clean(corpus.texts[1])])
        let wantText = importedText.embedTokens(ids, batch: 2)
        let textTower = try XCTUnwrap(model.text)
        let gotText = ids.withUnsafeBufferPointer { p -> [Float] in
            let out = textTower.forward(tokens: p.baseAddress!, batch: 2)
            return Array(UnsafeBufferPointer(start: out, count: wantText.count))
        }
        XCTAssertLessThan(maxRelativeDifference(gotText, wantText), 1e-5, "initial text features differ from the import")
        model.isTraining = true

        // A short run, then the checkpoint rebuilt for evaluation.
        let summary = try trainer.run()
        XCTAssertEqual(summary.steps, 2)
        XCTAssertTrue(summary.finalLoss?.isFinite ?? false)
        let checkpoint = run + "/last.safetensors"
        let (loaded, header) = try Checkpoint.loadModel(checkpoint)
        XCTAssertEqual(header.config.model.vision, backbone)
        XCTAssertEqual(header.config.model.text, clipModel.text)
        XCTAssertTrue(header.tokenizerState?.contains("clip-bpe") ?? false)
        XCTAssertTrue(try makeTextEncoding(stateJSON: try XCTUnwrap(header.tokenizerState)) is CLIPTextEncoding)
        let comm = SingleRankCommunicator()
        let assembler = try evaluationAssembler(for: loaded, header: header, dataset: dataset, pairsPath: nil,
                                                reportsPath: nil)
        XCTAssertEqual(assembler.preprocessing, timmModel.preprocessing)
        let reloaded = try evaluate(loaded, on: assembler, comm: comm, batchSize: 4)
        let direct = try evaluate(trainer.model, on: assembler, comm: comm, batchSize: 4)
        XCTAssertLessThan(maxRelativeDifference(reloaded.predictions.scores, direct.predictions.scores), 1e-6)
        XCTAssertEqual(reloaded.report.balancedAccuracy, direct.report.balancedAccuracy)

        // Resuming reads the same folders and tokenizer.
        let resumed = try Trainer(config: header.config, comm: comm, outputDirectory: run, resume: checkpoint,
                                  showProgress: false)
        XCTAssertEqual(resumed.config, trainer.config)
        XCTAssertTrue(resumed.tokenizer is CLIPTextEncoding)
    }

    /// A checkpoint's CLIP tokenizer state refuses tokenizer files that changed.
    func testChangedTokenizerFilesAreAClearError() throws {
        let source = try PretrainedFolderFixtures.path("hf_clip")
        let copy = data.directory + "/hf_clip"
        try FileManager.default.copyItem(atPath: source, toPath: copy)
        let state = try CLIPTextEncoding(folder: copy).stateJSON
        XCTAssertNoThrow(try makeTextEncoding(stateJSON: state))
        let vocabulary = copy + "/vocab.json"
        try (try String(contentsOfFile: vocabulary, encoding: .utf8) + "\n").write(toFile: vocabulary, atomically: true,
                                                                                  encoding: .utf8)
        XCTAssertThrowsError(try makeTextEncoding(stateJSON: state)) { error in
            XCTAssertTrue("\(error)".contains("changed since the checkpoint was written"), "\(error)")
        }
    }

    /// A tokenizer setting that needs a folder says so.
    func testCLIPTokenizerWithoutAFolderIsRefused() throws {
        let config = try data.config(overrides: ["data.tokenizer=clip"])
        XCTAssertThrowsError(try config.validate()) { error in
            XCTAssertTrue("\(error)".contains("model.init_text"), "\(error)")
        }
    }
}

/// max |a − b| / max(|b|∞, tiny).
private func maxRelativeDifference(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "maxRelativeDifference: \(a.count) vs \(b.count) values")
    var worst: Float = 0, scale: Float = 1e-12
    for (x, y) in zip(a, b) {
        worst = max(worst, abs(x - y))
        scale = max(scale, abs(y))
    }
    return worst / scale
}
