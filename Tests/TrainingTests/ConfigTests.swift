@testable import Configuration
@testable import DataParallel
@testable import Datasets
@testable import Distributed
@testable import Evaluation
@testable import Formats
import Foundation
@testable import Import
@testable import Kernels
@testable import Model
@testable import Retrieval
@testable import Training
import XCTest

final class ConfigTests: XCTestCase {
    func testPresetsAndDefaultsFollowTheReference() throws {
        let config = try TrainingConfig.resolve(yaml: nil)
        XCTAssertEqual(config.model.preset, "tiny")
        XCTAssertEqual(config.method, .clipit)
        XCTAssertEqual(config.optim.optimizer, .adam)
        XCTAssertEqual(config.optim.lr, 1e-3)
        XCTAssertEqual(config.optim.weightDecay, 1e-4)
        XCTAssertEqual(config.optim.gradClip, 0.5)
        XCTAssertEqual(config.optim.etaMin, 1e-4)
        XCTAssertEqual(config.model.distillationWeight, 1)
        XCTAssertEqual(config.model.crossEntropy, .logits)
        let demo = try TrainingConfig.preset("demo")
        XCTAssertEqual(demo.model.vision.imageSize, 64)
        XCTAssertEqual(demo.model.vision.patchSize, 8)
        XCTAssertTrue((128...192).contains(demo.model.vision.width))
        XCTAssertTrue((4...6).contains(demo.model.vision.depth))
        XCTAssertThrowsError(try TrainingConfig.preset("huge"))
    }

    func testYAMLFileThenOverridesThenUnknownKeys() throws {
        let yaml = """
            method: unimodal-lora
            seed: 3
            model:
              preset: demo
              vision:
                depth: 5
              lora:
                rank: 4
            optim:
              schedule: cosine
              weight_decay: 0.001
            """
        let config = try TrainingConfig.resolve(yaml: yaml, overrides: ["optim.lr=5e-4", "model.vision.depth=6",
                                                                        "data.train='a: b.cds'"])
        XCTAssertEqual(config.method, .unimodalLoRA)
        XCTAssertEqual(config.seed, 3)
        XCTAssertEqual(config.model.vision.depth, 6, "--set wins over the file")
        XCTAssertEqual(config.model.vision.width, 128, "unset keys keep the preset's values")
        XCTAssertEqual(config.model.lora.rank, 4)
        XCTAssertEqual(config.optim.schedule, .cosine)
        XCTAssertEqual(config.optim.weightDecay, 0.001)
        XCTAssertEqual(config.optim.lr, 5e-4)
        XCTAssertEqual(config.data.train, "a: b.cds")

        XCTAssertThrowsError(try TrainingConfig.resolve(yaml: "optim:\n  learning_rate: 0.1\n")) {
            XCTAssertTrue("\($0)".contains("unknown key 'optim.learning_rate'"), "\($0)")
        }
        XCTAssertThrowsError(try TrainingConfig.resolve(yaml: nil, overrides: ["train.epochs=many"])) {
            XCTAssertTrue("\($0)".contains("train.epochs"), "\($0)")
        }
        XCTAssertThrowsError(try TrainingConfig.resolve(yaml: nil, overrides: ["novalue"]))
        // Optional architecture keys may be set even though the preset leaves them out.
        let projected = try TrainingConfig.resolve(yaml: nil, overrides: ["model.vision.projection_dim=16"])
        XCTAssertEqual(projected.model.vision.projectionDim, 16)
    }

    func testEffectiveYAMLRoundTripsAndJSONToo() throws {
        let config = try TrainingConfig.resolve(yaml: nil, overrides: ["model.preset=demo", "method=text-drop:30",
                                                                       "optim.eta_min=0.0002"])
        let yaml = try config.yaml()
        XCTAssertTrue(yaml.contains("weight_decay:"))
        XCTAssertTrue(yaml.contains("eta_min:"))
        XCTAssertFalse(yaml.contains("weightDecay"))
        XCTAssertEqual(try TrainingConfig.resolve(yaml: yaml), config)
        XCTAssertEqual(try TrainingConfig.fromJSON(try config.json()), config)
        // Resuming: the checkpoint's configuration is the base.
        let resumed = try TrainingConfig.resolve(yaml: nil, overrides: ["train.epochs=7"], base: config)
        XCTAssertEqual(resumed.method, .textDrop(percent: 30))
        XCTAssertEqual(resumed.train.epochs, 7)
    }

    func testExampleConfigsInTheRepositoryAreValid() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("configs")
        let files = (try? FileManager.default.contentsOfDirectory(atPath: root.path))?.filter { $0.hasSuffix(".yaml") } ?? []
        XCTAssertFalse(files.isEmpty, "configs/*.yaml")
        for file in files {
            let text = try String(contentsOf: root.appendingPathComponent(file), encoding: .utf8)
            XCTAssertNoThrow(try TrainingConfig.resolve(yaml: text), file)
        }
    }

    func testMethodNames() throws {
        for method in TrainingMethod.all {
            XCTAssertEqual(try TrainingMethod(parsing: method.description), method)
        }
        XCTAssertEqual(try TrainingMethod(parsing: "text-drop:0"), .textDrop(percent: 0))
        XCTAssertEqual(try TrainingMethod(parsing: "text-drop:30").wordDropFraction, 0.3)
        XCTAssertThrowsError(try TrainingMethod(parsing: "text-drop:101"))
        XCTAssertThrowsError(try TrainingMethod(parsing: "clip-it")) { XCTAssertTrue("\($0)".contains("unimodal-lora")) }
        XCTAssertFalse(TrainingMethod.unimodal.needsText)
        XCTAssertFalse(TrainingMethod.noDistill.needsText)
        XCTAssertTrue(TrainingMethod.textOnly.needsText)
        XCTAssertFalse(TrainingMethod.textOnly.readsImages)
    }

    func testValidationRejectsInconsistentSettings() throws {
        var config = try TrainingConfig.resolve(yaml: nil, overrides: ["data.train=x.cds", "method=unimodal"])
        XCTAssertNoThrow(try config.validate())
        config.model.text.endOfTextId = 5
        XCTAssertThrowsError(try config.validate()) { XCTAssertTrue("\($0)".contains("end_of_text_id")) }
        config = try TrainingConfig.resolve(yaml: nil, overrides: ["data.train=x.cds", "method=clipit"])
        XCTAssertThrowsError(try config.validate()) { XCTAssertTrue("\($0)".contains("--pairs")) }
        XCTAssertThrowsError(try TrainingConfig.resolve(yaml: nil, overrides: ["optim.optimizer=lamb"]).validate())
        XCTAssertThrowsError(try TrainingConfig.resolve(yaml: nil, overrides: ["train.batch_size=0"]).validate())
    }

    func testWordTokenizer() throws {
        let corpus = ["Adenocarcinoma, moderately differentiated.", "Stroma; adenocarcinoma absent 3.5cm"]
        let tokenizer = WordTokenizer(corpus: corpus, vocabularySize: 16, contextLength: 8)
        XCTAssertEqual(WordTokenizer.tokens(of: "Size 3.5cm, Ki-67"), ["size", "3", ".", "5cm", ",", "ki", "-", "67"])
        // Counts: "adenocarcinoma" 2, "." 2, then eight tokens once; ties by UTF-8 bytes.
        XCTAssertEqual(Array(tokenizer.words.prefix(3)), [".", "adenocarcinoma", ","])
        XCTAssertEqual(tokenizer.words.count, 10)
        XCTAssertEqual(WordTokenizer(corpus: corpus, vocabularySize: 8, contextLength: 8).words.count, 4,
                       "at most vocabulary − 4 words")
        XCTAssertEqual(tokenizer, WordTokenizer(corpus: corpus, vocabularySize: 16, contextLength: 8))
        let ids = tokenizer.encode("adenocarcinoma unseen")
        XCTAssertEqual(ids, [1, 4, 2, 15, 0, 0, 0, 0])
        let long = tokenizer.encode(String(repeating: "stroma ", count: 20))
        XCTAssertEqual(long.count, 8)
        XCTAssertEqual(long.first, 1)
        XCTAssertEqual(long.last, tokenizer.endOfTextId, "truncated text still ends with end-of-text")
        XCTAssertEqual(try WordTokenizer(stateJSON: tokenizer.stateJSON), tokenizer)
    }

    func testKeyCaseConversion() {
        XCTAssertEqual(snakeCase("weightDecay"), "weight_decay")
        XCTAssertEqual(snakeCase("endOfTextId"), "end_of_text_id")
        XCTAssertEqual(camelCase("key_padding_after_end_of_text"), "keyPaddingAfterEndOfText")
        XCTAssertEqual(camelCase("epochs"), "epochs")
    }
}

/// Retriever pretraining reads the `pretrain:` section of the same configuration system.
final class PretrainConfigTests: XCTestCase {
    func testPretrainSectionOverridesAndTypedDecoding() throws {
        let yaml = """
        method: clipit
        pretrain:
          preset: tiny
          epochs: 3
          normalization: imagenet
        """
        let c = try PretrainConfig.resolve(yaml: yaml, overrides: ["pretrain.min_lr=1e-6", "pretrain.lora_rank=4"])
        XCTAssertEqual(c.preset, "tiny")
        XCTAssertEqual(c.epochs, 3)
        XCTAssertEqual(c.normalization, .imagenet)
        XCTAssertEqual(c.minLr, 1e-6)
        XCTAssertEqual(c.loraRank, 4)
        XCTAssertEqual(c.batchSize, PretrainConfig().batchSize, "keys not given keep the defaults")
        XCTAssertEqual(try PretrainConfig.resolve(yaml: try c.yaml()), c, "config.yaml reads back to the same configuration")
        // The training configuration of the same file skips the pretrain section.
        XCTAssertEqual(try TrainingConfig.resolve(yaml: yaml).method, .clipit)
    }

    func testPretrainErrorsNameTheKeyAndSuggest() {
        XCTAssertThrowsError(try PretrainConfig.resolve(yaml: "pretrain:\n  learning_rate: 0.1\n")) {
            XCTAssertTrue("\($0)".contains("unknown key 'pretrain.learning_rate'"), "\($0)")
        }
        XCTAssertThrowsError(try PretrainConfig.resolve(yaml: nil, overrides: ["pretrain.normalization=imagnet"])) {
            XCTAssertTrue("\($0)".contains("did you mean 'imagenet'?"), "\($0)")
        }
        XCTAssertThrowsError(try PretrainConfig.resolve(yaml: nil, overrides: ["lr=0.1"])) {
            XCTAssertTrue("\($0)".contains("pretrain.key"), "\($0)")
        }
    }

    func testTypoInAnEnumSuggestsTheNearestName() {
        XCTAssertThrowsError(try TrainingConfig.resolve(yaml: nil, overrides: ["optim.optimizer=adamm"])) {
            XCTAssertTrue("\($0)".contains("'optim.optimizer'"), "\($0)")
            XCTAssertTrue("\($0)".contains("did you mean 'adam'?"), "\($0)")
        }
        XCTAssertThrowsError(try TrainingConfig.resolve(yaml: nil, overrides: ["method=clipitt"])) {
            XCTAssertTrue("\($0)".contains("did you mean 'clipit'?"), "\($0)")
        }
        XCTAssertThrowsError(try TrainingConfig.resolve(yaml: nil, overrides: ["optim.schedule=zzzzzzzzzz"])) {
            XCTAssertFalse("\($0)".contains("did you mean"), "no suggestion for a name far from every valid one: \($0)")
            XCTAssertTrue("\($0)".contains("constant, cosine, warmup-cosine"), "\($0)")
        }
    }
}
