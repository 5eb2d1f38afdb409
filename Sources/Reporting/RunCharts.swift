import Evaluation
import Foundation

/// The charts and tables of one or more runs of a method, shared by the results page
/// (`ResultsPage`) and the one-run page (`EvaluationPage`): training curves, the
/// confusion matrix and the per-class table.
enum RunCharts {
    /// The axes shared by the curve charts of every method on a page, so that methods
    /// compare at a glance: steps from 0 to the last logged step, each loss term from 0
    /// to its largest value, validation balanced accuracy over its range (in %).
    struct CurveDomains {
        var steps: ClosedRange<Double>
        var terms: [LossTerm: ClosedRange<Double>]
        var validation: ClosedRange<Double>

        init(logs: [TrainingLog]) {
            let lastStep = logs.flatMap { $0.steps.map(\.step) + $0.validations.map(\.step) }.max() ?? 1
            steps = 0...Double(max(lastStep, 1))
            var terms: [LossTerm: ClosedRange<Double>] = [:]
            for term in LossTerm.allCases {
                let highest = logs.flatMap { $0.curve(term).map(\.y) }.max() ?? 1
                terms[term] = Ticks.niceDomain(0, max(highest, 0))
            }
            self.terms = terms
            let accuracies = logs.flatMap { $0.validations.map { $0.balancedAccuracy * 100 } }
            validation = Ticks.niceDomain(accuracies.min() ?? 0, accuracies.max() ?? 100)
        }
    }

    static let termTitles: [LossTerm: String] = [
        .loss: "loss (total)", .ce: "ce (cross-entropy)", .distill: "distill (1 − cos, image vs. report)",
    ]

    /// The legend name of a seed.
    static func seedName(_ seed: Int) -> String { "seed \(seed)" }

    /// One chart per loss term that varies in some run (distill is 0 throughout for
    /// methods without it) and one of validation balanced accuracy; one line per run,
    /// coloured by seed. Returns the SVGs and a note on the terms left out.
    static func curves(_ runs: [(seed: Int, log: TrainingLog)], domains: CurveDomains,
                       width: Double = 286) -> (charts: [String], note: String?) {
        let layout = ChartLayout(width: width, height: 210, left: 50, right: 10, top: 40, bottom: 38)
        var charts: [String] = []
        var constant: [String] = []
        for term in LossTerm.allCases {
            guard runs.contains(where: { $0.log.varies(term) }) else {
                if runs.contains(where: { !$0.log.curve(term).isEmpty }) { constant.append(term.rawValue) }
                continue
            }
            let series = runs.map {
                LineChart.Series(name: seedName($0.seed), colour: Palette.colour($0.seed), points: $0.log.curve(term))
            }
            charts.append(LineChart(title: termTitles[term]!, xLabel: "step", yLabel: term.rawValue, series: series,
                                    layout: layout, xDomain: domains.steps, yDomain: domains.terms[term]).svg())
        }
        let validation = runs.map { run in
            LineChart.Series(name: seedName(run.seed), colour: Palette.colour(run.seed),
                             points: run.log.validationCurve.map { (x: $0.x, y: $0.y * 100) })
        }
        charts.append(LineChart(title: "validation balanced accuracy", xLabel: "step", yLabel: "balanced acc. (%)",
                                series: validation, layout: layout, xDomain: domains.steps,
                                yDomain: domains.validation).svg())
        let note = constant.isEmpty ? nil
            : constant.joined(separator: ", ") + " is 0 at every step: not a term of this method's loss."
        return (charts, note)
    }

    /// The confusion matrix of the runs, summed over them (each run's test predictions
    /// counted once), as a heat map; nil when the runs disagree on the classes.
    static func summedConfusion(_ metrics: [MetricsReport], title: String) -> String? {
        guard let first = metrics.first, metrics.allSatisfy({ $0.classNames == first.classNames }) else { return nil }
        let c = first.classNames.count
        var sum = [[Int]](repeating: [Int](repeating: 0, count: c), count: c)
        for m in metrics {
            guard m.confusionMatrix.count == c, m.confusionMatrix.allSatisfy({ $0.count == c }) else { return nil }
            for r in 0..<c { for k in 0..<c { sum[r][k] += m.confusionMatrix[r][k] } }
        }
        return HeatMap(title: title, rowLabels: first.classNames, columnLabels: first.classNames, counts: sum).svg()
    }

    /// Per class over the runs' test evaluations: support and recall (per-class
    /// accuracy) — with several runs its mean ± std over seeds and each seed's; with one
    /// run also precision, F1 and AUROC.
    static func perClassTable(_ runs: [(seed: Int, metrics: MetricsReport)]) -> String {
        guard let first = runs.first?.metrics else { return "" }
        let multiple = runs.count > 1
        let seeds = runs.map { String($0.seed) }.joined(separator: " / ")
        let header = multiple ? ["class", "support", "recall, mean ± std (%)", "recall, seed \(seeds) (%)"]
            : ["class", "support", "recall (%)", "precision (%)", "F1 (%)", "AUROC (%)"]
        var rows: [[String]] = []
        for (k, name) in first.classNames.enumerated() {
            let classes = runs.compactMap { $0.metrics.perClass.indices.contains(k) ? $0.metrics.perClass[k] : nil }
            guard classes.count == runs.count else { continue }
            let support = String(classes[0].support)
            if multiple {
                let recall = SeedStatistics(classes.compactMap(\.recall))
                rows.append([name, support,
                             recall.values.isEmpty ? "–" : Markup.percent(mean: recall.mean, std: recall.std),
                             classes.map { $0.recall.map { String(format: "%.1f", $0 * 100) } ?? "–" }
                                 .joined(separator: " / ")])
            } else {
                let c = classes[0]
                rows.append([name, support, c.recall.map(Markup.percent) ?? "–", Markup.percent(c.precision),
                             Markup.percent(c.f1), c.auroc.map(Markup.percent) ?? "–"])
            }
        }
        return HTML.table(header: header, rows: rows, numeric: multiple ? [1, 2] : Set(1..<header.count))
    }
}
