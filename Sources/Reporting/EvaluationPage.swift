import Evaluation
import Foundation

/// `clipit eval --html`'s page: one run's test metrics, its confusion matrix, per-class
/// accuracy and — when its run folder holds metrics.jsonl — its training curves.
/// Self-contained (`HTMLReport`).
public struct EvaluationPage: Sendable {
    /// The evaluated checkpoint and the dataset file, as shown on the page.
    public var checkpoint: String
    public var data: String
    public var evaluation: TestEvaluation
    /// The run's metrics log (`TrainingLog.beside(checkpoint)`), when there is one.
    public var log: TrainingLog?

    public init(checkpoint: String, data: String, evaluation: TestEvaluation, log: TrainingLog?) {
        self.checkpoint = checkpoint
        self.data = data
        self.evaluation = evaluation
        self.log = log
    }

    /// The whole page.
    public func html() -> String {
        let method = evaluation.method ?? "unknown method", seed = evaluation.seed ?? 0
        var intro = ["checkpoint: \(checkpoint)", "data: \(data)", "method: \(method), seed \(seed)"]
        if let step = evaluation.step { intro[2] += ", step \(step)" }
        var page = HTMLReport(title: "Evaluation: \(method), seed \(seed)", intro: intro)
        page.addSection(id: "metrics", title: "Metrics", body: metricsTable())
        let m = evaluation.metrics
        let matrix = RunCharts.summedConfusion([m], title: "confusion matrix (\(m.sampleCount) images)")
        page.addSection(id: "confusion", title: "Confusion matrix and per-class accuracy",
                        body: HTML.note("Rows: true class, columns: predicted class; a cell's shade and percentage are "
                                        + "its share of the row (the diagonal is each class's recall).")
                            + HTML.row([matrix ?? "", RunCharts.perClassTable([(seed: seed, metrics: m)])]))
        if let log {
            let (charts, note) = RunCharts.curves([(seed: seed, log: log)], domains: RunCharts.CurveDomains(logs: [log]))
            page.addSection(id: "curves", title: "Training curves",
                            body: HTML.note("From metrics.jsonl in the checkpoint's folder.") + HTML.row(charts)
                                + (note.map(HTML.note) ?? ""))
        } else {
            page.addSection(id: "curves", title: "Training curves",
                            body: HTML.note("The checkpoint's folder holds no metrics.jsonl."))
        }
        return page.render()
    }

    private func metricsTable() -> String {
        let image = evaluation.metrics, text = evaluation.textMetrics
        func pct(_ value: Double?) -> String { value.map(Markup.percent) ?? "–" }
        var header = ["metric", "image model"]
        if text != nil { header.append("text-only model") }
        var rows: [[String]] = []
        func add(_ name: String, _ value: (MetricsReport) -> Double?) {
            rows.append([name, pct(value(image))] + (text.map { [pct(value($0))] } ?? []))
        }
        add("balanced accuracy (%)") { $0.balancedAccuracy }
        add("accuracy (%)") { $0.accuracy }
        add("macro-F1 (%)") { $0.macroF1 }
        add("macro AUROC (%)") { $0.macroAUROC }
        rows.append(["test images", String(image.sampleCount)] + (text.map { [String($0.sampleCount)] } ?? []))
        if let omega = evaluation.omega {
            rows.append(["Ω, text right and image wrong (%)", pct(omega)] + (text != nil ? [""] : []))
        }
        return HTML.table(header: header, rows: rows, numeric: Set(1..<header.count))
    }
}
