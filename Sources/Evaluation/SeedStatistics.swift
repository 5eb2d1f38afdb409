/// Mean and sample standard deviation of one metric over the seeds of a method
/// (`clipit report`): mean = Σxᵢ/n, std = √(Σ(xᵢ − mean)²/(n − 1)), 0 for one value.
public struct SeedStatistics: Equatable, Sendable {
    public var values: [Double]

    public init(_ values: [Double]) { self.values = values }

    /// The mean; NaN for no values.
    public var mean: Double { values.isEmpty ? .nan : values.reduce(0, +) / Double(values.count) }

    /// Sample standard deviation (n − 1); 0 for a single value.
    public var std: Double {
        guard values.count > 1 else { return 0 }
        let m = mean
        return (values.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(values.count - 1)).squareRoot()
    }

    /// Standard error of the mean, std/√n.
    public var standardError: Double { values.isEmpty ? .nan : std / Double(values.count).squareRoot() }

    /// The per-seed differences method − baseline over the seeds both have (runs of the
    /// same seed share initialisation and data order), in the method's seed order; nil
    /// with fewer than two common seeds.
    public static func pairedDifferences(method: [(seed: Int, value: Double)],
                                         baseline: [(seed: Int, value: Double)]) -> SeedStatistics? {
        let base = Dictionary(baseline.map { ($0.seed, $0.value) }, uniquingKeysWith: { first, _ in first })
        let differences = method.compactMap { run in base[run.seed].map { run.value - $0 } }
        return differences.count >= 2 ? SeedStatistics(differences) : nil
    }
}
