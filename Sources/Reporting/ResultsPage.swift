import Evaluation
import Foundation
import Retrieval

/// The gallery of one pairing: examples of one split.
public struct PairingGallery: Sendable {
    public var pairing: String
    public var split: String
    /// Images in the split (the examples are a few of them).
    public var imageCount: Int
    public var examples: [RetrievalExample]

    public init(pairing: String, split: String, imageCount: Int, examples: [RetrievalExample]) {
        self.pairing = pairing
        self.split = split
        self.imageCount = imageCount
        self.examples = examples
    }
}

/// `clipit report`'s page (report.html): per method over seeds, the test table, test
/// balanced accuracy with error bars, training curves, summed confusion matrices with
/// per-class accuracy and Ω; per pairing, the score histogram and label match; and a
/// gallery of retrieval examples. Self-contained (`HTMLReport`).
public struct ResultsPage: Sendable {
    public var title: String
    /// Lines under the title (the settings).
    public var notes: [String]
    public var groups: [MethodGroup]
    /// The method-versus-baseline lines of the report, shown under the table.
    public var comparison: [String]
    public var pairings: [PairingResult]
    public var galleries: [PairingGallery]
    /// Why there is no gallery, when there is none (e.g. the options it needs).
    public var galleryNote: String?

    public init(title: String = "Test results", notes: [String] = [], groups: [MethodGroup], comparison: [String] = [],
                pairings: [PairingResult] = [], galleries: [PairingGallery] = [], galleryNote: String? = nil) {
        self.title = title
        self.notes = notes
        self.groups = groups
        self.comparison = comparison
        self.pairings = pairings
        self.galleries = galleries
        self.galleryNote = galleryNote
    }

    /// The whole page.
    public func html() -> String {
        var page = HTMLReport(title: title, intro: notes)
        page.addSection(id: "summary", title: "Summary", body: summary())
        page.addSection(id: "accuracy", title: "Test balanced accuracy", body: accuracyChart())
        page.addSection(id: "curves", title: "Training curves", body: curves())
        page.addSection(id: "confusion", title: "Confusion matrices and per-class accuracy", body: confusion())
        page.addSection(id: "pairing", title: "Pairing scores and label match", body: pairingSection())
        page.addSection(id: "retrieval", title: "Retrieval examples", body: gallerySection())
        return page.render()
    }

    private var seeds: [Int] { Array(Set(groups.flatMap { $0.runs.map(\.seed) })).sorted() }

    private func summary() -> String {
        func mean(_ s: SeedStatistics?) -> String { s.map { Markup.percent($0.mean) } ?? "–" }
        let rows = groups.map { g -> [String] in
            let b = g.balancedAccuracy
            return [g.name, String(g.runs.count), Markup.percent(mean: b.mean, std: b.std), mean(g.accuracy),
                    mean(g.macroF1), mean(g.macroAUROC), g.omega.map { Markup.percent(mean: $0.mean, std: $0.std) } ?? "–"]
        }
        var out = HTML.note("Test split; mean ± sample std over seeds, in %. Ω: test images the text-only model "
                            + "classifies right and the method's image-only model wrong.")
        out += HTML.table(header: ["method", "seeds", "balanced acc.", "accuracy", "macro-F1", "macro AUROC", "Ω"],
                          rows: rows, numeric: [1, 2, 3, 4, 5, 6])
        if !comparison.isEmpty { out += HTML.list(comparison) }
        return out
    }

    private func accuracyChart() -> String {
        let categories = groups.map { g in
            ErrorBarChart.Category(name: g.name, values: g.runs.map { $0.test.metrics.balancedAccuracy * 100 },
                                   colours: g.runs.map { Palette.colour($0.seed) })
        }
        let legend = seeds.map { LegendEntry(name: RunCharts.seedName($0), colour: Palette.colour($0)) }
        let chart = ErrorBarChart(title: "test balanced accuracy per method", valueLabel: "balanced accuracy (%)",
                                  categories: categories, legend: legend, width: 1180)
        return HTML.note("Bar: mean over seeds; whisker: mean ± sample std; dots: the seeds.") + chart.svg()
    }

    private func curves() -> String {
        let logs = groups.flatMap { $0.runs.compactMap(\.log) }
        guard !logs.isEmpty else { return HTML.note("No run folder holds metrics.jsonl.") }
        let domains = RunCharts.CurveDomains(logs: logs)
        var out = HTML.note("One line per seed. Loss terms: the global-batch mean at every optimiser step; validation: "
                            + "balanced accuracy at every validation (the checkpoint evaluated on test is the best one). "
                            + "Axes are shared by all methods.")
        for g in groups {
            let runs = g.runs.compactMap { run in run.log.map { (seed: run.seed, log: $0) } }
            out += HTML.heading(g.name)
            guard !runs.isEmpty else { out += HTML.note("No metrics.jsonl in these run folders."); continue }
            let (charts, note) = RunCharts.curves(runs, domains: domains)
            out += HTML.row(charts)
            if let note { out += HTML.note(note) }
        }
        return out
    }

    private func confusion() -> String {
        let out = HTML.note("Confusion matrices summed over the seeds (every seed's test predictions counted once); "
                            + "rows: true class, columns: predicted class; a cell's shade and percentage are its share "
                            + "of the row, so the diagonal is each class's recall (per-class accuracy).")
        var blocks: [String] = []
        for g in groups {
            var heading = g.name
            if let omega = g.omega { heading += " — Ω " + Markup.percent(mean: omega.mean, std: omega.std) + " %" }
            let metrics = g.runs.map(\.test.metrics)
            let total = metrics.map(\.sampleCount).reduce(0, +)
            let seedsText = g.runs.count == 1 ? "1 seed" : "\(g.runs.count) seeds"
            let matrix = RunCharts.summedConfusion(metrics, title: "\(g.name): \(seedsText), \(total) predictions")
            let table = RunCharts.perClassTable(g.runs.map { (seed: $0.seed, metrics: $0.test.metrics) })
            blocks.append("<div class=\"block\">" + HTML.heading(heading)
                          + (matrix ?? HTML.note("The runs' class names differ; no summed matrix.")) + table + "</div>")
        }
        return out + HTML.row(blocks)
    }

    private func pairingSection() -> String {
        guard !pairings.isEmpty else { return HTML.note("No pairings (pass --pairs DIR to clipit report).") }
        let bins = pairings.first?.summaries.first?.histogram.counts.count ?? 0
        let out = HTML.note("Histogram of each split's chosen-pair cosine scores over [−1, 1] (\(bins) bins; bar "
                            + "height: share of the split's images). Label match: pairs whose report label equals the "
                            + "image label (their number in brackets); reports used: distinct reports chosen; most "
                            + "uses: the most images paired with one report.")
        var blocks: [String] = []
        for p in pairings {
            let series = p.summaries.enumerated().map { i, s in
                HistogramChart.Series(name: "\(s.split) (\(s.imageCount))", colour: Palette.colour(i), counts: s.histogram.counts)
            }
            let bounds = p.summaries.first.map { ($0.histogram.lower, $0.histogram.upper) } ?? (-1, 1)
            let sameBins = Set(p.summaries.map(\.histogram.counts.count)).count <= 1 && bounds.1 > bounds.0
            let chart = sameBins ? HistogramChart(title: "\(p.name): scores of the chosen pairs", xLabel: "cosine score",
                                                  lower: bounds.0, upper: bounds.1, series: series,
                                                  layout: ChartLayout(width: 570)).svg()
                : HTML.note("The splits' histograms have different bins.")
            func score(_ value: Double?) -> String { value.map { String(format: "%.3f", $0) } ?? "–" }
            let rows = p.summaries.map { s -> [String] in
                [s.split, String(s.imageCount),
                 s.labelMatchRate.map { Markup.percent($0) + " % (\(s.labelMatches))" } ?? "no labels",
                 "\(score(s.meanScore)) (\(score(s.minScore)) to \(score(s.maxScore)))",
                 String(s.distinctReports), String(s.maxImagesPerReport)]
            }
            let table = HTML.table(header: ["split", "images", "label match", "score: mean (min to max)",
                                            "reports used", "most uses"],
                                   rows: rows, numeric: [1, 2, 3, 4, 5])
            let source = p.computedFromPairsFiles ? HTML.note("Summarised from the pairs files (no pairing-summary.json).") : ""
            blocks.append("<div class=\"block\">" + HTML.heading("\(p.name) (strategy \(p.strategy))") + chart + table
                          + source + "</div>")
        }
        return out + HTML.row(blocks)
    }

    private func gallerySection() -> String {
        guard !galleries.isEmpty else {
            return HTML.note(galleryNote ?? "No retrieval examples.")
        }
        var out = HTML.note("Images of a split with the report their pairing chose: a fixed selection, evenly spaced "
                            + "over the split, with a quarter taken from the pairs whose labels differ when there are "
                            + "such pairs. Green: labels match; red: they differ.")
        for gallery in galleries {
            let mismatches = gallery.examples.filter { $0.labelsMatch == false }.count
            out += HTML.heading("\(gallery.pairing), \(gallery.split) split: \(gallery.examples.count) of "
                                + "\(gallery.imageCount) images, \(mismatches) with differing labels")
            out += "<div class=\"gallery\">" + gallery.examples.map(card).joined() + "</div>"
        }
        return out
    }

    private func card(_ e: RetrievalExample) -> String {
        let kind = e.labelsMatch.map { $0 ? "match" : "mismatch" } ?? "unknown"
        let verdict = e.labelsMatch.map { $0 ? "labels match" : "labels differ" } ?? "labels unknown"
        var out = "<figure class=\"example \(kind)\">"
        out += HTML.pngImage(e.thumbnailPNG, width: e.thumbnailWidth, height: e.thumbnailHeight, alt: "image \(e.image)")
        out += "<figcaption>"
        out += "<div class=\"meta\">image \(e.image): <b>\(Markup.escape(e.imageLabel ?? "?"))</b></div>"
        out += "<div class=\"meta\">report \(Markup.escape(e.reportID)): <b>\(Markup.escape(e.reportLabel ?? "?"))</b>"
            + String(format: ", score %.3f", e.score) + "</div>"
        out += "<div class=\"verdict\">\(verdict)</div>"
        out += "<blockquote>\(Markup.escape(e.reportExcerpt))</blockquote>"
        if e.reportExcerpt != e.reportText {
            out += "<details><summary>whole report</summary><p>\(Markup.escape(e.reportText))</p></details>"
        }
        return out + "</figcaption></figure>"
    }
}
