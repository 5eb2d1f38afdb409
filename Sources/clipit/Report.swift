import ArgumentParser
import Datasets
import Evaluation
import Formats
import Foundation
import Reporting

/// `clipit report`: summarises the `clipit eval` JSON files of many runs into one table
/// (mean ± standard deviation over seeds per method), the gain of a method over a
/// baseline, and an ablation's share of that gain. Writes results.md, results.json and
/// report.html (`ResultsPage`: curves, error bars, confusion matrices, pairing histograms,
/// retrieval examples; docs/report.md).
struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Summarise the test evaluations of many runs: a table of mean ± std over seeds per method.",
        discussion: """
            Reads RUNS/<name>/test.json (written by `clipit eval --out`) for every run folder \
            <name> in RUNS. Runs are grouped by their folder name without a trailing \
            "-seed<N>" (so clipit-seed0, clipit-seed1 form the group "clipit"); a folder without \
            that suffix forms a group of its own. Per group: the number of seeds, test balanced \
            accuracy mean ± sample standard deviation, the means of accuracy, macro-F1 and macro \
            AUROC, and Ω (when the evaluation had --text-checkpoint). Then the gain of --method \
            over --baseline (difference of means, and the mean ± std of the per-seed \
            differences: runs of the same seed share initialisation, data order and \
            augmentation), and how much of that gain remains under --ablation. With --pairs \
            DIR, also the label-match rate of every pairing in DIR/<strategy>/pairing-summary.json.

            Also writes report.html, one self-contained page (docs/report.md): per method, the \
            training curves of every seed (RUNS/<run>/metrics.jsonl), test balanced accuracy with \
            error bars, the confusion matrix summed over seeds with per-class accuracy and Ω; per \
            pairing, the score histogram and label match; and, with --data (and --reports), a \
            gallery of retrieval examples of --gallery-split.
            """)

    @Option(help: "Directory whose subfolders are runs holding test.json.")
    var runs: String

    @Option(help: "Write results.md and results.json here (default: the --runs directory).")
    var out: String?

    @Option(help: "Method group whose gain is measured.")
    var method: String = "clipit"

    @Option(help: "Baseline group the gain is measured against.")
    var baseline: String = "unimodal-lora"

    @Option(help: "Ablation group (e.g. the method with random pairing): how much of the gain it keeps.")
    var ablation: String = "clipit-random-pairs"

    @Option(help: "Directory of pairing folders (each with pairing-summary.json), for their label-match rates.")
    var pairs: String?

    @Option(help: "Comma-separated group names listed first, in this order (the rest follow alphabetically).")
    var order: String = ""

    @Option(help: "A line of text put under the title of results.md (repeatable), e.g. the settings.")
    var note: [String] = []

    @Option(help: "Data folder holding <split>.cds, the one the pairs were made from: report.html then shows retrieval examples.")
    var data: String?

    @Option(help: "Report corpus the pairs index, for the retrieval examples (default: reports.jsonl in --data).")
    var reports: String?

    @Option(help: "Retrieval examples per pairing in report.html (0: none).")
    var gallery: Int = 12

    @Option(help: "Split whose pairs the retrieval examples come from.")
    var gallerySplit: String = "test"

    func validate() throws {
        guard gallery >= 0 else { throw ValidationError("--gallery must be 0 or more, got \(gallery)") }
        if reports != nil && data == nil {
            throw ValidationError("--reports needs --data (the folder holding the split's .cds the pairs were made from)")
        }
    }

    func run() throws {
        let groups = try readGroups()
        guard !groups.isEmpty else {
            throw ValidationError("no run with test.json found in \(runs) (expected \(runs)/<run>/test.json)")
        }
        let pairingResults = try pairs.map(PairingFolders.read) ?? []
        let pairings = pairingResults.map(Pairing.init)
        let comparison = compare(groups)
        let markdown = renderMarkdown(groups, comparison: comparison, pairings: pairings)
        print(markdown, terminator: "")

        let outDir = out ?? runs
        try OutputDirectory.create(outDir)
        try AtomicFileWriter.write(Data(markdown.utf8), to: outDir + "/results.md")
        var object: [String: Any] = [
            "runs": runs,
            "std": "sample standard deviation over seeds (n - 1); 0 for one seed",
            "groups": groups.map(\.json),
            "comparison": comparison.json,
            "paired_differences": Dictionary(uniqueKeysWithValues: pairedTable(groups).map { row in
                (row.name, row.stats.json.merging(["standard_error": row.stats.standardError, "baseline": baseline]) { a, _ in a })
            }),
        ]
        if !note.isEmpty { object["notes"] = note }
        if !pairings.isEmpty { object["pairings"] = pairings.map(\.json) }
        let data = try JSONSerialization.data(withJSONObject: object,
                                              options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        try AtomicFileWriter.write(data, to: outDir + "/results.json")
        print("report: wrote \(outDir)/results.md and \(outDir)/results.json")

        let (galleries, galleryNote) = try readGalleries(pairingResults)
        let page = ResultsPage(notes: note, groups: groups, comparison: comparison.lines, pairings: pairingResults,
                               galleries: galleries, galleryNote: galleryNote)
        try AtomicFileWriter.write(Data(page.html().utf8), to: outDir + "/report.html")
        print("report: wrote \(outDir)/report.html")
    }

    // MARK: Reading

    typealias Group = MethodGroup
    typealias Stats = SeedStatistics

    private func readGroups() throws -> [Group] {
        let first = order.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        return try RunFolders.read(runs, order: first, readLogs: true)
    }

    struct Pairing {
        var name: String
        var strategy: String
        var labelMatch: [(split: String, rate: Double)]

        init(_ pairing: PairingResult) {
            name = pairing.name
            strategy = pairing.strategy
            labelMatch = pairing.summaries.compactMap { s in s.labelMatchRate.map { (split: s.split, rate: $0) } }
        }

        var json: [String: Any] {
            ["name": name, "strategy": strategy,
             "label_match": Dictionary(uniqueKeysWithValues: labelMatch.map { ($0.split, $0.rate) })]
        }
    }

    /// The retrieval examples of every pairing with a pairs file of --gallery-split, or why
    /// there are none.
    private func readGalleries(_ pairings: [PairingResult]) throws -> ([PairingGallery], String?) {
        guard gallery > 0 else { return ([], "No retrieval examples (--gallery 0).") }
        guard !pairings.isEmpty else {
            return ([], "Retrieval examples need the pairings: pass --pairs DIR, --data DIR and --reports FILE to clipit report.")
        }
        guard let data else {
            return ([], "Pass --data DIR (the folder holding \(gallerySplit).cds the pairs were made from) and --reports FILE "
                        + "to clipit report to see retrieval examples.")
        }
        let dataset = try DatasetFile(path: try DataFolder.datasetPath(data, split: gallerySplit))
        let corpusPath = reports ?? (data as NSString).appendingPathComponent("reports.jsonl")
        let corpus = try ReportCorpus(path: corpusPath, classNames: dataset.classNames)
        let galleries = try pairings.compactMap {
            try PairingGallery.read($0, split: gallerySplit, dataset: dataset, corpus: corpus, corpusPath: corpusPath,
                                    count: gallery)
        }
        return (galleries, galleries.isEmpty ? "No pairing in --pairs has \(gallerySplit).pairs.jsonl." : nil)
    }

    // MARK: Comparison

    struct Comparison {
        var lines: [String] = []
        var json: [String: Any] = [:]
    }

    private func compare(_ groups: [Group]) -> Comparison {
        var c = Comparison()
        func group(_ name: String) -> Group? { groups.first { $0.name == name } }
        guard let m = group(method), let b = group(baseline) else {
            c.lines.append("(no comparison: groups '\(method)' and '\(baseline)' are not both present)")
            return c
        }
        let gain = m.balancedAccuracy.mean - b.balancedAccuracy.mean
        let spread = max(m.balancedAccuracy.std, b.balancedAccuracy.std)
        let paired = pairedDifferences(m, b)
        let exceeds = gain > spread && (m.runs.count > 1 && b.runs.count > 1)
        c.lines.append(String(format: "%@ − %@: %+.2f points of balanced accuracy (difference of means); "
                                  + "seed-to-seed std %.2f (%@) and %.2f (%@)",
                              method, baseline, gain * 100, m.balancedAccuracy.std * 100, method, b.balancedAccuracy.std * 100, baseline))
        if let paired {
            c.lines.append(String(format: "per-seed differences (same seed, same initialisation and data order): %@ → mean %+.2f ± %.2f",
                                  paired.values.map { String(format: "%+.2f", $0 * 100) }.joined(separator: ", "),
                                  paired.mean * 100, paired.std * 100))
        }
        c.lines.append(exceeds
            ? "the gain is larger than the seed-to-seed spread (std) of both methods"
            : "the gain is NOT larger than the seed-to-seed spread (std) of both methods")
        c.json = ["method": method, "baseline": baseline, "gain": gain, "spread": spread,
                  "gain_exceeds_spread": exceeds]
        if let paired { c.json["paired_differences"] = paired.json }
        if let a = group(ablation) {
            let ablationGain = a.balancedAccuracy.mean - b.balancedAccuracy.mean
            c.lines.append(String(format: "%@ − %@: %+.2f points (std %.2f)", ablation, baseline, ablationGain * 100,
                                  a.balancedAccuracy.std * 100))
            c.lines.append(String(format: "%@ − %@: %+.2f points", method, ablation,
                                  (m.balancedAccuracy.mean - a.balancedAccuracy.mean) * 100))
            c.json["ablation"] = ablation
            c.json["ablation_gain"] = ablationGain
            if gain > 0 {
                let removed = 1 - ablationGain / gain
                c.lines.append(String(format: "%@ removes %.0f%% of the gain of %@ over %@", ablation, removed * 100,
                                      method, baseline))
                c.json["fraction_of_gain_removed_by_ablation"] = removed
            } else {
                c.lines.append("(no positive gain, so no share of it to remove)")
            }
        }
        return c
    }

    /// Differences method − baseline of the runs with equal seeds (nil without two common seeds).
    private func pairedDifferences(_ m: Group, _ b: Group) -> Stats? {
        SeedStatistics.pairedDifferences(method: m.runs.map { ($0.seed, $0.test.metrics.balancedAccuracy) },
                                         baseline: b.runs.map { ($0.seed, $0.test.metrics.balancedAccuracy) })
    }

    // MARK: Rendering

    private func renderMarkdown(_ groups: [Group], comparison: Comparison, pairings: [Pairing]) -> String {
        func pct(_ s: Stats) -> String { String(format: "%.2f ± %.2f", s.mean * 100, s.std * 100) }
        func mean(_ s: Stats?) -> String { s.map { String(format: "%.2f", $0.mean * 100) } ?? "–" }
        var out = "# Test results\n\n"
        for line in note { out += line + "\n" }
        if !note.isEmpty { out += "\n" }
        out += "Test split; mean ± sample std over seeds, in %. Ω: test images the text-only model classifies "
            + "right and the method's image-only model wrong (text-only model of the same seed, top-1 pairs).\n\n"
        out += "| method | seeds | balanced acc. | accuracy | macro-F1 | macro AUROC | Ω |\n"
        out += "|---|---|---|---|---|---|---|\n"
        for g in groups {
            let omega = g.omega.map(pct) ?? "–"
            out += "| \(g.name) | \(g.runs.count) | \(pct(g.balancedAccuracy)) | \(mean(g.accuracy)) | \(mean(g.macroF1)) "
                + "| \(mean(g.macroAUROC)) | \(omega) |\n"
        }
        out += "\n"
        for line in comparison.lines { out += "- " + line + "\n" }
        let differences = pairedTable(groups)
        if !differences.isEmpty {
            out += "\nPaired differences against \(baseline) (method − baseline on the same seed), in points of "
                + "balanced accuracy: mean, standard error (std/√n) and their ratio; the random-pairing control of a "
                + "method is the group named `<method>-random-pairs`.\n\n"
            out += "| method | seeds | mean difference | s.e. | mean/s.e. | its random-pairs control |\n|---|---|---|---|---|---|\n"
            for row in differences {
                let control = row.control.map { String(format: "%+.2f ± %.2f", $0.mean * 100, $0.standardError * 100) } ?? "–"
                out += String(format: "| %@ | %d | %+.2f | %.2f | %+.2f | %@ |\n", row.name, row.stats.values.count,
                              row.stats.mean * 100, row.stats.standardError * 100,
                              row.stats.standardError > 0 ? row.stats.mean / row.stats.standardError : 0, control)
            }
        }
        if !pairings.isEmpty {
            out += "\nPairing label match (image label = paired report's label):\n\n"
            for p in pairings {
                let rates = p.labelMatch.map { String(format: "%@ %.1f%%", $0.split, $0.rate * 100) }.joined(separator: ", ")
                out += "- \(p.name) (\(p.strategy)): \(rates.isEmpty ? "no labels" : rates)\n"
            }
        }
        return out
    }

    /// Every group's paired differences against `baseline` (two or more common seeds), with
    /// its `-random-pairs` control's, in the groups' order.
    func pairedTable(_ groups: [Group]) -> [(name: String, stats: SeedStatistics, control: SeedStatistics?)] {
        guard let b = groups.first(where: { $0.name == baseline }) else { return [] }
        return groups.compactMap { g in
            guard g.name != baseline, let stats = pairedDifferences(g, b) else { return nil }
            let control = groups.first { $0.name == g.name + "-random-pairs" }.flatMap { pairedDifferences($0, b) }
            return (g.name, stats, control)
        }
    }
}

extension MethodGroup {
    /// The group in results.json: its statistics and every run's figures.
    var json: [String: Any] {
        var object: [String: Any] = [
            "name": name, "method": method, "seeds": runs.map(\.seed),
            "balanced_accuracy": balancedAccuracy.json, "accuracy": accuracy.json, "macro_f1": macroF1.json,
            "runs": runs.map { run -> [String: Any] in
                let m = run.test.metrics
                var r: [String: Any] = ["name": run.name, "seed": run.seed, "balanced_accuracy": m.balancedAccuracy,
                                        "accuracy": m.accuracy, "macro_f1": m.macroF1]
                if let a = m.macroAUROC { r["macro_auroc"] = a }
                if let o = run.test.omega { r["omega"] = o }
                return r
            },
        ]
        if let auroc = macroAUROC { object["macro_auroc"] = auroc.json }
        if let omega { object["omega"] = omega.json }
        return object
    }
}

extension SeedStatistics {
    /// `{"mean", "std", "values"}` for results.json.
    var json: [String: Any] { ["mean": mean, "std": std, "values": values] }
}
