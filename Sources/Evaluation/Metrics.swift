import Distributed
import Formats
import Foundation

// Classification metrics for C classes (method decision 5: balanced accuracy is the
// primary metric; accuracy, macro-F1, macro one-vs-rest AUROC and the confusion matrix
// are reported beside it). Every function here is a pure function of (scores, labels)
// or of a confusion matrix; the distributed helpers at the end only move data.
//
// Conventions, shared by every function:
// - Labels and predictions are class indices in 0..<C. A label outside that range is
//   a programmer error and traps.
// - Scores are an N×C row-major matrix, one row per sample. The prediction of a row is
//   its argmax, ties going to the lowest class index; a NaN score never wins.
//   For AUROC, pass probabilities (softmax of the logits) to match what sklearn's
//   `roc_auc_score(y, p, multi_class="ovr")` sees: the ranking of one class's column
//   across samples is not invariant under the per-row softmax.

/// A C×C confusion matrix, rows = true class, columns = predicted class.
///
/// `counts[t * classCount + p]` is the number of samples of true class t predicted
/// as p. Summing the matrices of disjoint sample sets gives the matrix of their union,
/// which is why `allreduced(over:)` is an exact, cheap distributed path for every
/// metric that depends on the counts only (accuracy, balanced accuracy, macro-F1).
public struct ConfusionMatrix: Codable, Equatable, Sendable {
    /// Number of classes C.
    public let classCount: Int
    /// C×C counts, row-major, rows = true class.
    public private(set) var counts: [Int]

    /// An all-zero matrix for `classCount` classes.
    public init(classCount: Int) {
        precondition(classCount >= 1, "ConfusionMatrix: classCount must be at least 1, got \(classCount)")
        self.classCount = classCount
        counts = [Int](repeating: 0, count: classCount * classCount)
    }

    /// The matrix of paired `labels` (true) and `predictions`.
    public init(classCount: Int, labels: [Int], predictions: [Int]) {
        precondition(labels.count == predictions.count,
                     "ConfusionMatrix: \(labels.count) labels but \(predictions.count) predictions")
        self.init(classCount: classCount)
        for (label, prediction) in zip(labels, predictions) { add(label: label, prediction: prediction) }
    }

    /// A matrix from its C×C row-major counts (for example after an allreduce).
    public init(classCount: Int, counts: [Int]) {
        precondition(counts.count == classCount * classCount,
                     "ConfusionMatrix: \(counts.count) counts for \(classCount) classes")
        precondition(counts.allSatisfy { $0 >= 0 }, "ConfusionMatrix: negative count")
        self.classCount = classCount
        self.counts = counts
    }

    /// Counts one sample.
    public mutating func add(label: Int, prediction: Int) {
        precondition(label >= 0 && label < classCount, "ConfusionMatrix: label \(label) outside 0..<\(classCount)")
        precondition(prediction >= 0 && prediction < classCount,
                     "ConfusionMatrix: prediction \(prediction) outside 0..<\(classCount)")
        counts[label * classCount + prediction] += 1
    }

    /// Number of samples of true class `trueClass` predicted as `predicted`.
    public subscript(trueClass: Int, predicted: Int) -> Int { counts[trueClass * classCount + predicted] }

    /// Total number of samples.
    public var total: Int { counts.reduce(0, +) }

    /// Samples whose true class is c (row sums).
    public var support: [Int] {
        (0..<classCount).map { t in (0..<classCount).reduce(0) { $0 + self[t, $1] } }
    }

    /// Samples predicted as c (column sums).
    public var predictedCounts: [Int] {
        (0..<classCount).map { p in (0..<classCount).reduce(0) { $0 + self[$1, p] } }
    }

    /// Correct predictions of class c (the diagonal).
    public var truePositives: [Int] { (0..<classCount).map { self[$0, $0] } }

    /// Accuracy = Σ_c M[c, c] / N. Zero for an empty matrix.
    public var accuracy: Double {
        let n = total
        return n == 0 ? 0 : Double(truePositives.reduce(0, +)) / Double(n)
    }

    /// Recall of each class, TP_c / support_c; `nil` for a class without support.
    public var recall: [Double?] {
        zip(truePositives, support).map { tp, s in s == 0 ? nil : Double(tp) / Double(s) }
    }

    /// Precision of each class, TP_c / predicted_c, with sklearn's `zero_division=0`:
    /// a class that is never predicted has precision 0.
    public var precision: [Double] {
        zip(truePositives, predictedCounts).map { tp, p in p == 0 ? 0 : Double(tp) / Double(p) }
    }

    /// F1 of each class, 2·TP / (2·TP + FP + FN) (the harmonic mean of precision and
    /// recall), with `zero_division=0`: 0 when the class has neither support nor
    /// predictions.
    public var f1: [Double] {
        let support = self.support, predicted = predictedCounts
        return (0..<classCount).map { c in
            let denominator = support[c] + predicted[c]   // = 2·TP + FP + FN
            return denominator == 0 ? 0 : 2 * Double(self[c, c]) / Double(denominator)
        }
    }

    /// Balanced accuracy: the mean recall over the classes that occur in the labels
    /// (support > 0). A class absent from the labels has no defined recall and is left
    /// out, as in sklearn's `balanced_accuracy_score` (adjusted = false). Zero for an
    /// empty matrix.
    public var balancedAccuracy: Double {
        let defined = recall.compactMap { $0 }
        return defined.isEmpty ? 0 : defined.reduce(0, +) / Double(defined.count)
    }

    /// Macro-F1: the mean of `f1` over the classes that occur in the labels *or* in the
    /// predictions, i.e. sklearn's `f1_score(y, p, average="macro", zero_division=0)`
    /// with its default label set (the union of both). A class that is predicted but
    /// never true, or true but never predicted, contributes an F1 of 0; a class that
    /// is neither has F1 = 0/0 and is left out. Zero for an empty matrix.
    public var macroF1: Double {
        let scores = f1
        let support = self.support, predicted = predictedCounts
        let present = (0..<classCount).filter { support[$0] > 0 || predicted[$0] > 0 }
        return present.isEmpty ? 0 : present.reduce(0) { $0 + scores[$1] } / Double(present.count)
    }

    /// The element-wise sum over all ranks (an `allreduce` of the counts): the matrix of
    /// all ranks' samples. Every rank must call it.
    public func allreduced(over comm: any Communicator) throws -> ConfusionMatrix {
        var summed = counts
        try comm.allreduce(&summed, .sum)
        return ConfusionMatrix(classCount: classCount, counts: summed)
    }
}

// MARK: - Predictions from scores

/// The argmax of each row of an N×C row-major score matrix (ties: lowest class index;
/// a NaN never wins; an all-NaN row predicts class 0).
public func argmaxPredictions(scores: [Float], classCount: Int) -> [Int] {
    precondition(classCount >= 1 && scores.count % classCount == 0,
                 "argmaxPredictions: \(scores.count) scores is not a multiple of \(classCount) classes")
    let rows = scores.count / classCount
    var predictions = [Int](repeating: 0, count: rows)
    for r in 0..<rows {
        var best = 0
        var bestScore = -Float.infinity
        var seen = false
        for c in 0..<classCount {
            let s = scores[r * classCount + c]
            if s.isNaN { continue }
            if !seen || s > bestScore { best = c; bestScore = s; seen = true }
        }
        predictions[r] = best
    }
    return predictions
}

// MARK: - AUROC

/// Area under the ROC curve of `scores` for the binary labels `positive`, by the
/// Mann–Whitney U statistic with average ranks for ties:
///
///     AUROC = (R₊ − n₊(n₊ + 1)/2) / (n₊ · n₋)
///
/// where R₊ is the sum of the (1-based, tie-averaged) ranks of the positive samples'
/// scores among all scores. Equivalently, the probability that a random positive
/// scores above a random negative, a tied pair counting 1/2. Equals sklearn's
/// `roc_auc_score`. NaN scores rank below every number. `nil` when there are no
/// positives or no negatives (the curve is undefined).
public func binaryAUROC(scores: [Float], positive: [Bool]) -> Double? {
    precondition(scores.count == positive.count,
                 "binaryAUROC: \(scores.count) scores but \(positive.count) labels")
    let positives = positive.reduce(0) { $0 + ($1 ? 1 : 0) }
    let negatives = positive.count - positives
    if positives == 0 || negatives == 0 { return nil }
    let keys = scores.map { $0.isNaN ? -Float.infinity : $0 }
    let order = keys.indices.sorted { keys[$0] < keys[$1] }
    var positiveRankSum = 0.0
    var start = 0
    while start < order.count {
        // A run of equal scores occupies ranks start+1 ... end; each gets their mean.
        var end = start + 1
        while end < order.count && keys[order[end]] == keys[order[start]] { end += 1 }
        let averageRank = Double(start + 1 + end) / 2
        for i in start..<end where positive[order[i]] { positiveRankSum += averageRank }
        start = end
    }
    let p = Double(positives), n = Double(negatives)
    return (positiveRankSum - p * (p + 1) / 2) / (p * n)
}

/// One-vs-rest AUROC of each class: column c of the N×C `scores` against
/// `labels == c`. `nil` for a class that is absent from the labels or is the only
/// class present (only one label value, so no ROC curve).
public func perClassAUROC(scores: [Float], labels: [Int], classCount: Int) -> [Double?] {
    precondition(scores.count == labels.count * classCount,
                 "perClassAUROC: \(scores.count) scores for \(labels.count) samples × \(classCount) classes")
    return (0..<classCount).map { c in
        let column = (0..<labels.count).map { scores[$0 * classCount + c] }
        return binaryAUROC(scores: column, positive: labels.map { $0 == c })
    }
}

/// Macro one-vs-rest AUROC: the unweighted mean of `perClassAUROC` over the classes
/// where it is defined (sklearn's `roc_auc_score(..., multi_class="ovr",
/// average="macro")` restricted to those classes; sklearn itself refuses inputs with
/// an absent class). `nil` when no class has both positives and negatives.
public func macroAUROC(scores: [Float], labels: [Int], classCount: Int) -> Double? {
    macroAUROC(perClassAUROC(scores: scores, labels: labels, classCount: classCount))
}

/// The unweighted mean of the defined per-class AUROCs; nil when none is defined.
func macroAUROC(_ perClass: [Double?]) -> Double? {
    let defined = perClass.compactMap { $0 }
    return defined.isEmpty ? nil : defined.reduce(0, +) / Double(defined.count)
}

// MARK: - Ω score

/// The Ω score (paper Figure 4): the fraction of samples that the text-only classifier
/// gets right *and* the vision-only classifier gets wrong,
///
///     Ω = |{i : text_i = y_i ∧ vision_i ≠ y_i}| / N,
///
/// the complementary information the paired reports could add. Zero for N = 0.
public func omegaScore(labels: [Int], textPredictions: [Int], visionPredictions: [Int]) -> Double {
    precondition(labels.count == textPredictions.count && labels.count == visionPredictions.count,
                 "omegaScore: \(labels.count) labels, \(textPredictions.count) text and "
                     + "\(visionPredictions.count) vision predictions")
    if labels.isEmpty { return 0 }
    var complementary = 0
    for i in labels.indices where textPredictions[i] == labels[i] && visionPredictions[i] != labels[i] {
        complementary += 1
    }
    return Double(complementary) / Double(labels.count)
}

// MARK: - Report

/// Per-class figures of a `MetricsReport`.
public struct ClassMetrics: Codable, Equatable, Sendable {
    public var name: String
    /// Samples of this class (row sum of the confusion matrix).
    public var support: Int
    /// Samples predicted as this class (column sum).
    public var predicted: Int
    /// TP / predicted, 0 when never predicted.
    public var precision: Double
    /// TP / support, `nil` without support.
    public var recall: Double?
    /// 2·TP / (2·TP + FP + FN), 0 with neither support nor predictions.
    public var f1: Double
    /// One-vs-rest AUROC; `nil` when undefined or when the report was built from
    /// predictions only.
    public var auroc: Double?
}

/// All metrics of one evaluation, as written to `metrics.json` and logs.
public struct MetricsReport: Codable, Equatable, Sendable {
    public var sampleCount: Int
    public var classNames: [String]
    public var accuracy: Double
    /// The primary metric (method decision 5).
    public var balancedAccuracy: Double
    public var macroF1: Double
    /// `nil` when built without scores or when no class has a defined AUROC.
    public var macroAUROC: Double?
    public var perClass: [ClassMetrics]
    /// Rows = true class, columns = predicted class.
    public var confusionMatrix: [[Int]]

    /// The report of an N×C `scores` matrix (probabilities, see the file comment) and
    /// the N `labels`; predictions are the row argmaxes. `classNames` defaults to
    /// "0", "1", ….
    public init(scores: [Float], labels: [Int], classCount: Int, classNames: [String]? = nil) {
        precondition(scores.count == labels.count * classCount,
                     "MetricsReport: \(scores.count) scores for \(labels.count) samples × \(classCount) classes")
        let predictions = argmaxPredictions(scores: scores, classCount: classCount)
        let matrix = ConfusionMatrix(classCount: classCount, labels: labels, predictions: predictions)
        self.init(confusion: matrix, classNames: classNames,
                  perClassAUROC: perClassAUROC(scores: scores, labels: labels, classCount: classCount))
    }

    /// The report of a confusion matrix alone (no AUROC): the cheap distributed path
    /// after `ConfusionMatrix.allreduced(over:)`.
    public init(confusion: ConfusionMatrix, classNames: [String]? = nil, perClassAUROC: [Double?]? = nil) {
        let c = confusion.classCount
        let names = classNames ?? (0..<c).map(String.init)
        precondition(names.count == c, "MetricsReport: \(names.count) class names for \(c) classes")
        let support = confusion.support, predicted = confusion.predictedCounts
        let precision = confusion.precision, recall = confusion.recall, f1 = confusion.f1
        sampleCount = confusion.total
        self.classNames = names
        accuracy = confusion.accuracy
        balancedAccuracy = confusion.balancedAccuracy
        macroF1 = confusion.macroF1
        let auroc = perClassAUROC ?? [Double?](repeating: nil, count: c)
        macroAUROC = Evaluation.macroAUROC(auroc)
        perClass = (0..<c).map {
            ClassMetrics(name: names[$0], support: support[$0], predicted: predicted[$0],
                         precision: precision[$0], recall: recall[$0], f1: f1[$0], auroc: auroc[$0])
        }
        confusionMatrix = (0..<c).map { t in (0..<c).map { confusion[t, $0] } }
    }

    /// Pretty-printed JSON with sorted keys (stable across runs, diff-friendly).
    public func jsonData() throws -> Data {
        try prettyJSON(self)
    }

    /// A plain-text rendering: the summary metrics, a per-class table and the confusion
    /// matrix with class names (rows = true, columns = predicted).
    public func renderTable() -> String {
        func percent(_ value: Double?) -> String {
            guard let value else { return "-" }
            return String(format: "%.2f", value * 100)
        }
        func pad(_ s: String, _ width: Int, left: Bool = false) -> String {
            let fill = String(repeating: " ", count: max(0, width - s.count))
            return left ? s + fill : fill + s
        }
        var lines: [String] = []
        lines.append("samples \(sampleCount)  balanced accuracy \(percent(balancedAccuracy))%  "
                         + "accuracy \(percent(accuracy))%  macro-F1 \(percent(macroF1))%  "
                         + "macro AUROC \(percent(macroAUROC))%")
        let nameWidth = max(5, classNames.map(\.count).max() ?? 0)
        lines.append(pad("class", nameWidth, left: true) + "  support  predicted  precision  recall      F1   AUROC")
        for m in perClass {
            lines.append(pad(m.name, nameWidth, left: true) + "  " + pad(String(m.support), 7) + "  "
                             + pad(String(m.predicted), 9) + "  " + pad(percent(m.precision), 9) + "  "
                             + pad(percent(m.recall), 6) + "  " + pad(percent(m.f1), 6) + "  "
                             + pad(percent(m.auroc), 6))
        }
        lines.append("")
        lines.append("confusion matrix (rows = true, columns = predicted)")
        let cellWidth = max(classNames.map(\.count).max() ?? 1,
                            confusionMatrix.flatMap { $0 }.map { String($0).count }.max() ?? 1)
        lines.append(pad("", nameWidth) + classNames.map { "  " + pad($0, cellWidth) }.joined())
        for (name, row) in zip(classNames, confusionMatrix) {
            lines.append(pad(name, nameWidth, left: true) + row.map { "  " + pad(String($0), cellWidth) }.joined())
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

// MARK: - Distributed evaluation

/// Why gathered predictions cannot be evaluated.
public struct MetricsError: Error, CustomStringConvertible, Sendable {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { "metrics: \(reason)" }
}

/// All ranks' predictions, in global sample order.
public struct GatheredPredictions: Equatable, Sendable {
    /// N×C scores, row i belonging to global sample `globalIndices[i]`.
    public var scores: [Float]
    /// True labels; -1 for the images of an unlabelled file (`predict`), which `report` cannot score.
    public var labels: [Int]
    /// Strictly increasing global sample indices.
    public var globalIndices: [Int]
    public var classCount: Int

    public var sampleCount: Int { labels.count }

    /// The full metrics report (AUROC included).
    public func report(classNames: [String]? = nil) -> MetricsReport {
        MetricsReport(scores: scores, labels: labels, classCount: classCount, classNames: classNames)
    }
}

/// Gathers every rank's predictions on every rank (`allgatherv`) and orders them by
/// global sample index, so that the metrics are those of the whole split, whatever the
/// number of ranks.
///
/// Each rank passes the N_r×C `scores`, the N_r `labels` and the N_r `globalIndices`
/// of the samples it evaluated. The union must not repeat a sample: a repeated global
/// index (for example a sampler that pads the last batch with duplicates) throws
/// instead of being counted twice, and so does a count different from
/// `expectedCount` when it is given. Every rank receives the same data, so every rank
/// throws or returns together and no rank is left in a collective.
public func gatherPredictions(comm: any Communicator, scores: [Float], labels: [Int], globalIndices: [Int],
                              classCount: Int, expectedCount: Int? = nil) throws -> GatheredPredictions {
    precondition(labels.count == globalIndices.count && scores.count == labels.count * classCount,
                 "gatherPredictions: \(scores.count) scores, \(labels.count) labels, "
                     + "\(globalIndices.count) indices for \(classCount) classes")
    let allScores = try comm.allgatherv(scores).values
    let allLabels = try comm.allgatherv(labels).values
    let allIndices = try comm.allgatherv(globalIndices).values
    let order = allIndices.indices.sorted { allIndices[$0] < allIndices[$1] }
    var gathered = GatheredPredictions(scores: [], labels: [], globalIndices: [], classCount: classCount)
    gathered.scores.reserveCapacity(allScores.count)
    for (position, i) in order.enumerated() {
        if position > 0 && allIndices[i] == gathered.globalIndices[position - 1] {
            throw MetricsError("global sample index \(allIndices[i]) was evaluated more than once "
                                   + "(evaluate with a sampler that covers each sample exactly once, "
                                   + "e.g. ShardedSampler without dropLast)")
        }
        gathered.globalIndices.append(allIndices[i])
        gathered.labels.append(allLabels[i])
        gathered.scores.append(contentsOf: allScores[i * classCount ..< (i + 1) * classCount])
    }
    if let expectedCount, expectedCount != gathered.sampleCount {
        throw MetricsError("\(gathered.sampleCount) samples were evaluated across ranks, "
                               + "the split has \(expectedCount)")
    }
    return gathered
}

/// The confusion matrix of all ranks' predictions from each rank's `labels` and
/// `predictions`, by one `allreduce` of C² integers: the cheap path for accuracy,
/// balanced accuracy and macro-F1 (no AUROC, which needs the scores themselves).
public func allreducedConfusionMatrix(comm: any Communicator, labels: [Int], predictions: [Int],
                                      classCount: Int) throws -> ConfusionMatrix {
    try ConfusionMatrix(classCount: classCount, labels: labels, predictions: predictions).allreduced(over: comm)
}
