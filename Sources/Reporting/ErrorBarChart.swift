import Evaluation
import Foundation

/// A horizontal bar chart with error bars: one row per category (a method), a bar from 0
/// to the mean of its values, a whisker from mean − std to mean + std (sample standard
/// deviation, `SeedStatistics`), a dot per value (per seed), and "mean ± std" written in
/// the right margin.
///
/// The value axis maps `valueDomain` (default: [0, the largest mean + std or value],
/// widened to nice ticks) onto [layout.plotLeft, layout.plotRight]. The left margin is
/// made wide enough for the longest category name and the height grows with the rows.
public struct ErrorBarChart: Sendable {
    public struct Category: Sendable {
        public var name: String
        /// The values (one per seed) and the colour of each value's dot.
        public var values: [Double]
        public var colours: [String]

        public init(name: String, values: [Double], colours: [String]) {
            precondition(values.count == colours.count, "ErrorBarChart: \(values.count) values, \(colours.count) colours")
            self.name = name
            self.values = values
            self.colours = colours
        }

        public var statistics: SeedStatistics { SeedStatistics(values) }
    }

    public var title: String
    public var valueLabel: String
    public var categories: [Category]
    public var legend: [LegendEntry]
    public var width: Double
    public var rowHeight: Double
    public var valueDomain: ClosedRange<Double>?

    public init(title: String, valueLabel: String, categories: [Category], legend: [LegendEntry] = [],
                width: Double = 900, rowHeight: Double = 30, valueDomain: ClosedRange<Double>? = nil) {
        self.title = title
        self.valueLabel = valueLabel
        self.categories = categories
        self.legend = legend
        self.width = width
        self.rowHeight = rowHeight
        self.valueDomain = valueDomain
    }

    /// The chart's size and margins: left margin from the longest name, 120 px on the
    /// right for the "mean ± std" labels.
    public var layout: ChartLayout {
        let longest = categories.map { ChartFrame.textWidth($0.name) }.max() ?? 0
        return ChartLayout(width: width, height: 40 + 42 + rowHeight * Double(max(categories.count, 1)),
                           left: max(60, longest + 16), right: 120, top: 40, bottom: 42)
    }

    /// The value interval drawn.
    public var resolvedValueDomain: ClosedRange<Double> {
        if let valueDomain { return valueDomain }
        let highs = categories.flatMap { c -> [Double] in
            let s = c.statistics
            return c.values + (c.values.isEmpty ? [] : [s.mean + s.std])
        }.filter(\.isFinite)
        let low = min(0, highs.min() ?? 0)
        return Ticks.niceDomain(low, max(highs.max() ?? 1, low))
    }

    /// The pixel scale of the value axis.
    public var scale: LinearScale {
        LinearScale(domain: resolvedValueDomain, start: layout.plotLeft, end: layout.plotRight)
    }

    /// The chart as an `<svg>` element.
    public func svg() -> String {
        let layout = self.layout, x = scale
        let d = x.domain
        var out = ChartFrame.open(layout, title: title, cssClass: "chart bar-chart")
        out += ChartFrame.xAxis(layout, scale: x, step: Ticks.step(span: d.upperBound - d.lowerBound, target: 8),
                                label: valueLabel, grid: true)
        out += ChartFrame.line(layout.plotLeft, layout.plotTop, layout.plotLeft, layout.plotBottom, stroke: "#888")
        for (row, category) in categories.enumerated() {
            let top = layout.plotTop + Double(row) * rowHeight
            let centre = top + rowHeight / 2
            out += ChartFrame.text(category.name, x: layout.plotLeft - 8, y: centre + 4, anchor: "end",
                                   extra: " fill=\"#222\"")
            guard !category.values.isEmpty else { continue }
            let s = category.statistics
            let zero = x(max(d.lowerBound, min(0, d.upperBound)))
            let end = x(s.mean)
            out += "<rect class=\"bar\" x=\"\(Markup.coordinate(min(zero, end)))\" y=\"\(Markup.coordinate(top + 6))\" "
                + "width=\"\(Markup.coordinate(abs(end - zero)))\" height=\"\(Markup.coordinate(rowHeight - 12))\" "
                + "fill=\"#c6d4e6\"/>"
            let low = x(s.mean - s.std), high = x(s.mean + s.std)
            out += ChartFrame.line(low, centre, high, centre, stroke: "#333", width: 1.5, extra: " class=\"error-bar\"")
            out += ChartFrame.line(low, centre - 5, low, centre + 5, stroke: "#333", width: 1.5)
            out += ChartFrame.line(high, centre - 5, high, centre + 5, stroke: "#333", width: 1.5)
            let n = category.values.count
            let spread = min(4.0, (rowHeight / 2 - 6) / Double(max(n - 1, 1)) * 2)
            for (i, (value, colour)) in zip(category.values, category.colours).enumerated() {
                let offset = (Double(i) - Double(n - 1) / 2) * spread
                out += "<circle class=\"point\" cx=\"\(Markup.coordinate(x(value)))\" "
                    + "cy=\"\(Markup.coordinate(centre + offset))\" r=\"3.5\" fill=\"\(colour)\" stroke=\"#fff\" "
                    + "stroke-width=\"0.8\"/>"
            }
            let label = String(format: "%.2f ± %.2f (n=%d)", s.mean, s.std, n)
            out += ChartFrame.text(label, x: layout.plotRight + 8, y: centre + 4, anchor: "start", extra: " fill=\"#222\"")
        }
        out += ChartFrame.legend(legend, layout: layout)
        return out + ChartFrame.close
    }
}
