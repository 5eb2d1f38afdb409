import DataParallel
import Datasets
import Formats
import Import
import Model

/// The datasets of a training run and how batches are assembled from them: the training
/// and validation splits, and, for models that read text, the corpus encoded once and each
/// image's paired report.
struct TrainingData {
    let config: TrainingConfig
    let train: DatasetFile
    let validation: DatasetFile?

    var classNames: [String] { train.classNames }

    /// Opens `data.train` and `data.val` and checks that they are labelled splits of one dataset.
    init(config: TrainingConfig) throws {
        self.config = config
        train = try DatasetFile(path: config.data.train)
        validation = config.data.val.isEmpty ? nil : try DatasetFile(path: config.data.val)
        try train.requireLabels(for: "data.train")
        try validation?.requireLabels(for: "data.val")
        if let validation, validation.classNames != train.classNames {
            throw TrainingError("'\(validation.path)' has classes \(validation.classNames), '\(train.path)' has "
                                + "\(train.classNames): train and validate on splits of the same dataset")
        }
    }

    /// The assemblers `model` reads from (the training one with augmentation when
    /// `data.augment`), and the text encoding when the model reads reports.
    /// `resumedTokenizer`: a checkpoint's stored encoding, which wins over the config's.
    func assemblers(for model: any TrainableModel, resumedTokenizer: String?) throws
        -> (train: BatchAssembler, validation: BatchAssembler?, tokenizer: (any TextEncoding)?) {
        var trainText: PairedText?, validationText: PairedText?, encoding: (any TextEncoding)?
        if model.trainingInputs.contains(.tokens) || model.predictionInputs.contains(.tokens) {
            let corpus = try ReportCorpus(path: config.data.reports)
            let cleaned = corpus.texts.map(ReportCleaning.clean)
            let chosen = try textEncoding(cleaned: cleaned, resumed: resumedTokenizer)
            encoding = chosen
            trainText = try PairedText(corpus: corpus, cleaned: cleaned, pairsPath: config.data.trainPairs,
                                       imageCount: train.count, encoding: chosen,
                                       wordDropFraction: config.method.wordDropFraction,
                                       seed: UInt64(truncatingIfNeeded: config.seed))
            if let validation, model.predictionInputs.contains(.tokens) {
                // The same reports, tokens and word drop as training: only the pairing differs.
                validationText = try trainText?.paired(withPairsFile: config.data.valPairs, imageCount: validation.count)
            }
        }
        let normalization = try config.normalization()
        let size = config.model.vision.imageSize
        let augmented = config.data.augment ? TransformConfig.training(outputSize: size, normalization: normalization)
            : TransformConfig.evaluation(outputSize: size, normalization: normalization)
        // A pretrained tower's exact evaluation preprocessing wherever no augmentation is drawn.
        let exact = config.data.preprocessing
        let trainAssembler = BatchAssembler(dataset: train, transform: augmented, text: trainText,
                                            preprocessing: config.data.augment ? nil : exact)
        let validationAssembler = validation.map {
            BatchAssembler(dataset: $0, transform: .evaluation(outputSize: size, normalization: normalization),
                           text: validationText, preprocessing: exact)
        }
        return (trainAssembler, validationAssembler, encoding)
    }

    /// The text encoding: a resumed checkpoint's, the CLIP BPE tokenizer of a pretrained text
    /// tower's folder, the vocabulary of a retriever export's text tower, or a word tokenizer
    /// built from the cleaned corpus; checked against the text tower.
    private func textEncoding(cleaned: [String], resumed: String?) throws -> any TextEncoding {
        let encoding: any TextEncoding
        if let resumed {
            encoding = try makeTextEncoding(stateJSON: resumed)
        } else if config.data.tokenizer == .clip {
            encoding = try CLIPTextEncoding(folder: config.model.initText)
        } else if !config.model.initText.isEmpty,
                  let state = try SafeTensorsFile(path: config.model.initText).metadata["clipit.tokenizer"] {
            // A retriever export's text tower reads the ids of its own vocabulary.
            encoding = try makeTextEncoding(stateJSON: state)
        } else {
            encoding = WordTokenizer(corpus: cleaned, vocabularySize: config.model.text.vocabularySize,
                                     contextLength: config.model.text.contextLength)
        }
        try checkEncoding(encoding, fits: config.model.text)
        return encoding
    }
}
