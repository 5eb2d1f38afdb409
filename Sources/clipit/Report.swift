import ArgumentParser
import Evaluation
import Formats
import Foundation

/// `clipit report`: summarises the `clipit eval` JSON files of many runs into one table
/// (mean ± standard deviation over seeds per method), the gain of a method over a
/// baseline, and an ablation's share of that gain. Writes results.md and results.json.
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

    func run() throws {
        let groups = try readGroups()
        guard !groups.isEmpty else {
            throw ValidationError("no run with test.json found in \(runs) (expected \(runs)/<run>/test.json)")
        }
        let pairings = try pairs.map(readPairings) ?? []
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
        ]
        if !note.isEmpty { object["notes"] = note }
        if !pairings.isEmpty { object["pairings"] = pairings.map(\.json) }
        let data = try JSONSerialization.data(withJSONObject: object,
                                              options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        try AtomicFileWriter.write(data, to: outDir + "/results.json")
        print("report: wrote \(outDir)/results.md and \(outDir)/results.json")
    }

    // MARK: Reading

    struct Run {
        var name: String
        var seed: Int
        var method: String
        var balancedAccuracy: Double
        var accuracy: Double
        var macroF1: Double
        var macroAUROC: Double?
        var omega: Double?
    }

    struct Group {
        var name: String
        var method: String
        var runs: [Run]

        var balanced: Stats { Stats(runs.map(\.balancedAccuracy)) }
        var accuracy: Stats { Stats(runs.map(\.accuracy)) }
        var macroF1: Stats { Stats(runs.map(\.macroF1)) }
        var auroc: Stats? { runs.allSatisfy { $0.macroAUROC != nil } ? Stats(runs.map { $0.macroAUROC! }) : nil }
        var omega: Stats? { runs.allSatisfy { $0.omega != nil } ? Stats(runs.map { $0.omega! }) : nil }

        var json: [String: Any] {
            var object: [String: Any] = [
                "name": name, "method": method, "seeds": runs.map(\.seed),
                "balanced_accuracy": balanced.json, "accuracy": accuracy.json, "macro_f1": macroF1.json,
                "runs": runs.map { run -> [String: Any] in
                    var r: [String: Any] = ["name": run.name, "seed": run.seed, "balanced_accuracy": run.balancedAccuracy,
                                            "accuracy": run.accuracy, "macro_f1": run.macroF1]
                    if let a = run.macroAUROC { r["macro_auroc"] = a }
                    if let o = run.omega { r["omega"] = o }
                    return r
                },
            ]
            if let auroc { object["macro_auroc"] = auroc.json }
            if let omega { object["omega"] = omega.json }
            return object
        }
    }

    typealias Stats = SeedStatistics

    private func readGroups() throws -> [Group] {
        let fm = FileManager.default
        let names = try fm.contentsOfDirectory(atPath: runs).sorted()
        var byName: [String: Group] = [:]
        var order: [String] = []
        for name in names {
            let path = runs + "/" + name + "/test.json"
            guard fm.fileExists(atPath: path) else { continue }
            guard let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any],
                  let metrics = object["metrics"] as? [String: Any],
                  let balanced = ProjectJSON.value(metrics, "balanced_accuracy") as? Double,
                  let accuracy = metrics["accuracy"] as? Double,
                  let f1 = ProjectJSON.value(metrics, "macro_f1") as? Double else {
                throw ValidationError("\(path): not a `clipit eval --out` file (no metrics.balanced_accuracy)")
            }
            let method = object["method"] as? String ?? name
            let (group, suffixSeed) = splitSeed(name)
            let run = Run(name: name, seed: (object["seed"] as? Int) ?? suffixSeed ?? 0, method: method,
                          balancedAccuracy: balanced, accuracy: accuracy, macroF1: f1,
                          macroAUROC: ProjectJSON.value(metrics, "macro_auroc") as? Double, omega: object["omega"] as? Double)
            if byName[group] == nil {
                byName[group] = Group(name: group, method: method, runs: [])
                order.append(group)
            }
            byName[group]!.runs.append(run)
        }
        let first = self.order.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let ordered = first.filter { byName[$0] != nil } + order.filter { !first.contains($0) }
        return ordered.map { name in
            var g = byName[name]!
            g.runs.sort { $0.seed < $1.seed }
            return g
        }
    }

    /// "clipit-seed2" → ("clipit", 2); a name without the suffix is its own group.
    private func splitSeed(_ name: String) -> (String, Int?) {
        guard let range = name.range(of: "-seed", options: .backwards),
              let seed = Int(name[range.upperBound...]), !name[..<range.lowerBound].isEmpty else { return (name, nil) }
        return (String(name[..<range.lowerBound]), seed)
    }

    struct Pairing {
        var name: String
        var strategy: String
        var labelMatch: [(split: String, rate: Double)]
        var json: [String: Any] {
            ["name": name, "strategy": strategy,
             "label_match": Dictionary(uniqueKeysWithValues: labelMatch.map { ($0.split, $0.rate) })]
        }
    }

    private func readPairings(_ dir: String) throws -> [Pairing] {
        let fm = FileManager.default
        var result: [Pairing] = []
        for name in try fm.contentsOfDirectory(atPath: dir).sorted() {
            let path = dir + "/" + name + "/pairing-summary.json"
            guard fm.fileExists(atPath: path),
                  let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any],
                  let splits = object["splits"] as? [[String: Any]] else { continue }
            let strategy = splits.first?["strategy"] as? String ?? name
            let rates = splits.compactMap { s -> (String, Double)? in
                guard let split = s["split"] as? String, let rate = ProjectJSON.value(s, "label_match_rate") as? Double else { return nil }
                return (split, rate)
            }
            result.append(Pairing(name: name, strategy: strategy, labelMatch: rates.map { (split: $0.0, rate: $0.1) }))
        }
        return result
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
        let gain = m.balanced.mean - b.balanced.mean
        let spread = max(m.balanced.std, b.balanced.std)
        let paired = pairedDifferences(m, b)
        let exceeds = gain > spread && (m.runs.count > 1 && b.runs.count > 1)
        c.lines.append(String(format: "%@ − %@: %+.2f points of balanced accuracy (difference of means); "
                                  + "seed-to-seed std %.2f (%@) and %.2f (%@)",
                              method, baseline, gain * 100, m.balanced.std * 100, method, b.balanced.std * 100, baseline))
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
            let ablationGain = a.balanced.mean - b.balanced.mean
            c.lines.append(String(format: "%@ − %@: %+.2f points (std %.2f)", ablation, baseline, ablationGain * 100,
                                  a.balanced.std * 100))
            c.lines.append(String(format: "%@ − %@: %+.2f points", method, ablation,
                                  (m.balanced.mean - a.balanced.mean) * 100))
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
        SeedStatistics.pairedDifferences(method: m.runs.map { ($0.seed, $0.balancedAccuracy) },
                                         baseline: b.runs.map { ($0.seed, $0.balancedAccuracy) })
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
            out += "| \(g.name) | \(g.runs.count) | \(pct(g.balanced)) | \(mean(g.accuracy)) | \(mean(g.macroF1)) "
                + "| \(mean(g.auroc)) | \(omega) |\n"
        }
        out += "\n"
        for line in comparison.lines { out += "- " + line + "\n" }
        if !pairings.isEmpty {
            out += "\nPairing label match (image label = paired report's label):\n\n"
            for p in pairings {
                let rates = p.labelMatch.map { String(format: "%@ %.1f%%", $0.split, $0.rate * 100) }.joined(separator: ", ")
                out += "- \(p.name) (\(p.strategy)): \(rates.isEmpty ? "no labels" : rates)\n"
            }
        }
        return out
    }
}

extension SeedStatistics {
    /// `{"mean", "std", "values"}` for results.json.
    var json: [String: Any] { ["mean": mean, "std": std, "values": values] }
}
