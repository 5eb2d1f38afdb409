import Datasets
import Evaluation
import Foundation
import Reporting
import Retrieval

// Small, fully known inputs for the page and reader tests.

/// A metrics report of `labels` and `predictions` over the classes `names`.
func metricsReport(labels: [Int], predictions: [Int], names: [String]) -> MetricsReport {
    MetricsReport(confusion: ConfusionMatrix(classCount: names.count, labels: labels, predictions: predictions),
                  classNames: names)
}

/// A training log of `steps` steps (loss = ce + distill, distill = `distill`·(1 − step/steps))
/// and a validation every 5 steps.
func trainingLog(steps: Int, distill: Double) -> TrainingLog {
    TrainingLog(steps: (1...steps).map { s in
                    let d = distill * (1 - Double(s) / Double(steps))
                    let ce = 1.5 / Double(s)
                    return .init(step: s, loss: ce + d, ce: ce, distill: d)
                },
                validations: stride(from: 5, through: steps, by: 5).map {
                    .init(step: $0, balancedAccuracy: 0.5 + Double($0) / Double(steps) * 0.4)
                })
}

/// A run of method `group` and `seed` whose predictions are right except for `wrong` samples.
func runResult(group: String, seed: Int, wrong: Int, omega: Double?, log: TrainingLog?) -> RunResult {
    let names = ["normal", "tumour & <stroma>"]
    let labels = [0, 0, 0, 0, 1, 1, 1, 1]
    let predictions = labels.enumerated().map { $0.offset < wrong ? 1 - $0.element : $0.element }
    let test = TestEvaluation(method: group, seed: seed, metrics: metricsReport(labels: labels, predictions: predictions,
                                                                              names: names), omega: omega)
    return RunResult(name: "\(group)-seed\(seed)", folder: "runs/\(group)-seed\(seed)", seed: seed, method: group,
                     test: test, log: log)
}

/// A pairs file over 6 images and 4 reports, with labels; images 1 and 4 are paired with a
/// report of another class.
func labelledPairs(split: String = "test") -> PairsFile {
    let imageLabels = [0, 0, 0, 1, 1, 1]
    let reports = [0, 2, 1, 2, 1, 3]        // report labels: 0, 0, 1, 1
    let reportLabels = [0, 0, 1, 1]
    let records = (0..<6).map { i in
        PairRecord(image: i, report: reports[i], score: Float(i) / 10 - 0.2, topReports: [reports[i]],
                   topScores: [Float(i) / 10 - 0.2], imageLabel: imageLabels[i], reportLabel: reportLabels[reports[i]])
    }
    return PairsFile(split: split, strategy: .top1, seed: 0, reportCount: 4, recordedK: 1, records: records)
}

/// A 6-image 4×4 RGB dataset (labels 0, 0, 0, 1, 1, 1) written to `path`.
func writeDataset(_ path: String) throws -> DatasetFile {
    let info = DatasetInfo(classNames: ["normal", "tumour"], split: "test", source: "tests")
    let writer = try DatasetWriter(path: path, height: 4, width: 4, channels: 3, count: 6, info: info)
    for i in 0..<6 {
        try writer.append(image: (0..<48).map { UInt8(($0 * 5 + i * 40) % 256) }, label: i < 3 ? 0 : 1)
    }
    try writer.finish()
    return try DatasetFile(path: path)
}

/// The 4-report corpus the pairs of `labelledPairs` index.
let galleryCorpus = ReportCorpus(
    ids: ["r0", "r1", "r2", "r3"],
    texts: ["Normal mucosa.\nNo atypia.", "Unremarkable colon <b>bold</b>.",
            "Adenocarcinoma, moderately differentiated.\nMargins clear.\nThird line.\nFourth line.", "Tumour."],
    labels: [0, 0, 1, 1])
