import Foundation

/// A histogram of several series over the same bins (a pairing's score histogram, one
/// series per split): the bins split [lower, upper] into equal widths, and each bin holds
/// one bar per series side by side, of height count / the series' total (so splits of
/// different sizes compare). Bars of empty bins are not drawn.
///
/// The x axis maps [lower, upper] onto [layout.plotLeft, layout.plotRight]; the y axis
/// maps [0, the largest share] (widened to nice ticks) onto [layout.plotBottom,
/// layout.plotTop].
public struct HistogramChart: Sendable {
    public struct Series: Sendable {
        public var name: String
        public var colour: String
        public var counts: [Int]

        public init(name: String, colour: String, counts: [Int]) {
            self.name = name
            self.colour = colour
            self.counts = counts
        }

        /// count / total per bin (0 for an empty series).
        public var shares: [Double] {
            let total = counts.reduce(0, +)
            return counts.map { total == 0 ? 0 : Double($0) / Double(total) }
        }
    }

    public var title: String
    public var xLabel: String
    public var lower: Double
    public var upper: Double
    public var series: [Series]
    public var layout: ChartLayout

    public init(title: String, xLabel: String, lower: Double, upper: Double, series: [Series],
                layout: ChartLayout = ChartLayout(width: 440)) {
        precondition(upper > lower, "HistogramChart: upper \(upper) must exceed lower \(lower)")
        precondition(Set(series.map(\.counts.count)).count <= 1, "HistogramChart: every series needs the same bins")
        self.title = title
        self.xLabel = xLabel
        self.lower = lower
        self.upper = upper
        self.series = series
        self.layout = layout
    }

    /// Number of bins.
    public var binCount: Int { series.first?.counts.count ?? 0 }

    /// The pixel scales of the two axes.
    public var scales: (x: LinearScale, y: LinearScale) {
        let highest = series.flatMap(\.shares).max() ?? 0
        return (LinearScale(domain: lower...upper, start: layout.plotLeft, end: layout.plotRight),
                LinearScale(domain: Ticks.niceDomain(0, max(highest, 0.01)), start: layout.plotBottom, end: layout.plotTop))
    }

    /// The histogram as an `<svg>` element.
    public func svg() -> String {
        let (x, y) = scales
        var out = ChartFrame.open(layout, title: title, cssClass: "chart histogram")
        out += ChartFrame.yAxis(layout, scale: y, step: Ticks.step(span: y.domain.upperBound), label: "share of images")
        out += ChartFrame.xAxis(layout, scale: x, step: Ticks.step(span: upper - lower), label: xLabel)
        let bins = binCount
        let binWidth = (upper - lower) / Double(max(bins, 1))
        for (index, s) in series.enumerated() {
            for (b, share) in s.shares.enumerated() where share > 0 {
                let left = x(lower + Double(b) * binWidth), right = x(lower + Double(b + 1) * binWidth)
                let barWidth = (right - left - 1) / Double(series.count)
                let barLeft = left + 0.5 + Double(index) * barWidth
                let top = y(share)
                out += "<rect class=\"bin\" x=\"\(Markup.coordinate(barLeft))\" y=\"\(Markup.coordinate(top))\" "
                    + "width=\"\(Markup.coordinate(barWidth))\" height=\"\(Markup.coordinate(y(0) - top))\" "
                    + "fill=\"\(s.colour)\"><title>"
                    + Markup.escape(String(format: "%@: [%.2f, %.2f): %d (%.1f%%)", s.name, lower + Double(b) * binWidth,
                                           lower + Double(b + 1) * binWidth, s.counts[b], share * 100))
                    + "</title></rect>"
            }
        }
        out += ChartFrame.legend(series.map { LegendEntry(name: $0.name, colour: $0.colour) }, layout: layout)
        return out + ChartFrame.close
    }
}
