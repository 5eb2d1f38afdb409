import Foundation

/// A line chart: one polyline per series (a seed's loss against the step), over a linear
/// x and y axis.
///
/// Coordinates: x maps the series' x extent (or `xDomain`) onto [layout.plotLeft,
/// layout.plotRight]; y maps `yDomain` (default: the y extent widened to nice ticks,
/// `Ticks.niceDomain`, from 0 when `yFromZero`) onto [layout.plotBottom, layout.plotTop]
/// — `LinearScale` states the formula. Points with a non-finite coordinate are left out.
/// Series of at most `markerLimit` points also get a dot at every point (sparse series
/// such as one validation per epoch).
public struct LineChart: Sendable {
    public struct Series: Sendable {
        public var name: String
        public var colour: String
        public var points: [(x: Double, y: Double)]

        public init(name: String, colour: String, points: [(x: Double, y: Double)]) {
            self.name = name
            self.colour = colour
            self.points = points
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]
    public var layout: ChartLayout
    public var xDomain: ClosedRange<Double>?
    public var yDomain: ClosedRange<Double>?
    public var yFromZero: Bool
    public var markerLimit: Int

    public init(title: String, xLabel: String, yLabel: String, series: [Series], layout: ChartLayout = ChartLayout(),
                xDomain: ClosedRange<Double>? = nil, yDomain: ClosedRange<Double>? = nil, yFromZero: Bool = false,
                markerLimit: Int = 40) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
        self.layout = layout
        self.xDomain = xDomain
        self.yDomain = yDomain
        self.yFromZero = yFromZero
        self.markerLimit = markerLimit
    }

    private var finitePoints: [(x: Double, y: Double)] {
        series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite }
    }

    /// The x interval drawn: `xDomain`, or the extent of the points ([0, 1] without any).
    public var resolvedXDomain: ClosedRange<Double> {
        if let xDomain { return xDomain }
        let xs = finitePoints.map(\.x)
        guard let low = xs.min(), let high = xs.max() else { return 0...1 }
        return low...high
    }

    /// The y interval drawn: `yDomain`, or the points' extent widened to nice ticks.
    public var resolvedYDomain: ClosedRange<Double> {
        if let yDomain { return yDomain }
        let ys = finitePoints.map(\.y)
        guard let low = ys.min(), let high = ys.max() else { return 0...1 }
        return Ticks.niceDomain(yFromZero ? min(0, low) : low, yFromZero ? max(0, high) : high)
    }

    /// The pixel scales of the two axes.
    public var scales: (x: LinearScale, y: LinearScale) {
        (LinearScale(domain: resolvedXDomain, start: layout.plotLeft, end: layout.plotRight),
         LinearScale(domain: resolvedYDomain, start: layout.plotBottom, end: layout.plotTop))
    }

    /// The chart as an `<svg>` element.
    public func svg() -> String {
        let (x, y) = scales
        let xd = x.domain, yd = y.domain
        var out = ChartFrame.open(layout, title: title, cssClass: "chart line-chart")
        out += ChartFrame.yAxis(layout, scale: y, step: Ticks.step(span: yd.upperBound - yd.lowerBound), label: yLabel)
        out += ChartFrame.xAxis(layout, scale: x, step: Ticks.step(span: xd.upperBound - xd.lowerBound), label: xLabel)
        for s in series {
            let points = s.points.filter { $0.x.isFinite && $0.y.isFinite }
            guard !points.isEmpty else { continue }
            let list = points.map { Markup.coordinate(x($0.x)) + "," + Markup.coordinate(y($0.y)) }.joined(separator: " ")
            out += "<polyline class=\"series\" data-series=\"\(Markup.escape(s.name))\" points=\"\(list)\" fill=\"none\" "
                + "stroke=\"\(s.colour)\" stroke-width=\"1.5\" stroke-linejoin=\"round\"/>"
            if points.count <= markerLimit {
                for p in points {
                    out += "<circle cx=\"\(Markup.coordinate(x(p.x)))\" cy=\"\(Markup.coordinate(y(p.y)))\" r=\"2.5\" "
                        + "fill=\"\(s.colour)\"/>"
                }
            }
        }
        if finitePoints.isEmpty {
            out += ChartFrame.text("no data", x: (layout.plotLeft + layout.plotRight) / 2,
                                   y: (layout.plotTop + layout.plotBottom) / 2, anchor: "middle", extra: " fill=\"#888\"")
        }
        out += ChartFrame.legend(series.map { LegendEntry(name: $0.name, colour: $0.colour) }, layout: layout)
        return out + ChartFrame.close
    }
}
