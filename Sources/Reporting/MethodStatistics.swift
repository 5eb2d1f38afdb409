import Evaluation

/// The seed statistics of a method group's test metrics (mean and sample std over its
/// runs, `SeedStatistics`), as `clipit report`'s table shows them.
extension MethodGroup {
    public var balancedAccuracy: SeedStatistics { SeedStatistics(runs.map(\.test.metrics.balancedAccuracy)) }
    public var accuracy: SeedStatistics { SeedStatistics(runs.map(\.test.metrics.accuracy)) }
    public var macroF1: SeedStatistics { SeedStatistics(runs.map(\.test.metrics.macroF1)) }

    /// nil unless every run has a macro AUROC.
    public var macroAUROC: SeedStatistics? {
        let values = runs.compactMap(\.test.metrics.macroAUROC)
        return values.count == runs.count ? SeedStatistics(values) : nil
    }

    /// nil unless every run's evaluation had Ω (--text-checkpoint).
    public var omega: SeedStatistics? {
        let values = runs.compactMap(\.test.omega)
        return values.count == runs.count ? SeedStatistics(values) : nil
    }
}
