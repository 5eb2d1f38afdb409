import Foundation

/// The size of a chart and the margins around its plot area, in pixels. The plot area
/// spans x ∈ [left, width − right] and y ∈ [top, height − bottom]; the title sits in the
/// top margin above the legend, the axis labels in the left and bottom margins.
public struct ChartLayout: Equatable, Sendable {
    public var width: Double
    public var height: Double
    public var left: Double
    public var right: Double
    public var top: Double
    public var bottom: Double

    public init(width: Double = 380, height: Double = 240, left: Double = 56, right: Double = 14,
                top: Double = 40, bottom: Double = 42) {
        self.width = width
        self.height = height
        self.left = left
        self.right = right
        self.top = top
        self.bottom = bottom
    }

    public var plotLeft: Double { left }
    public var plotRight: Double { width - right }
    public var plotTop: Double { top }
    public var plotBottom: Double { height - bottom }
}

/// The colours of series (seeds, splits): Tableau 10, chosen by index modulo 10, so the
/// same seed has the same colour in every chart of a page.
public enum Palette {
    public static let colours = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1",
                                 "#76b7b2", "#edc948", "#ff9da7", "#9c755f", "#bab0ac"]

    /// The colour of series `index` (any integer).
    public static func colour(_ index: Int) -> String {
        colours[((index % colours.count) + colours.count) % colours.count]
    }
}

/// One entry of a chart's legend.
public struct LegendEntry: Equatable, Sendable {
    public var name: String
    public var colour: String

    public init(name: String, colour: String) {
        self.name = name
        self.colour = colour
    }
}

/// The SVG pieces every chart shares: the root element, the title, axes with ticks and
/// grid lines, and the legend. All text passes through `Markup.escape`.
enum ChartFrame {
    static let fontSize = 11.0

    /// An estimate of the width of `text` at `size` pixels in a sans-serif font (for
    /// margins and legends; the browser's font decides the real width).
    static func textWidth(_ text: String, size: Double = fontSize) -> Double {
        Double(text.count) * size * 0.6
    }

    /// The opening `<svg>` element with its accessible title. Inline SVG in HTML needs
    /// no namespace declaration, so the page holds no URL at all.
    static func open(_ layout: ChartLayout, title: String, cssClass: String) -> String {
        let w = Markup.coordinate(layout.width), h = Markup.coordinate(layout.height)
        return "<svg class=\"\(cssClass)\" width=\"\(w)\" height=\"\(h)\" viewBox=\"0 0 \(w) \(h)\" "
            + "font-family=\"sans-serif\" font-size=\"\(Markup.coordinate(fontSize))\" role=\"img\" "
            + "aria-label=\"\(Markup.escape(title))\"><title>\(Markup.escape(title))</title>"
            + "<rect class=\"background\" width=\"\(w)\" height=\"\(h)\" fill=\"#ffffff\"/>"
            + text(title, x: 8, y: 16, anchor: "start", extra: " font-weight=\"bold\" font-size=\"12\"")
    }

    static let close = "</svg>"

    /// A `<text>` element.
    static func text(_ content: String, x: Double, y: Double, anchor: String, extra: String = "") -> String {
        "<text x=\"\(Markup.coordinate(x))\" y=\"\(Markup.coordinate(y))\" text-anchor=\"\(anchor)\"\(extra)>"
            + Markup.escape(content) + "</text>"
    }

    /// A line segment.
    static func line(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, stroke: String,
                     width: Double = 1, extra: String = "") -> String {
        "<line x1=\"\(Markup.coordinate(x1))\" y1=\"\(Markup.coordinate(y1))\" x2=\"\(Markup.coordinate(x2))\" "
            + "y2=\"\(Markup.coordinate(y2))\" stroke=\"\(stroke)\" stroke-width=\"\(Markup.coordinate(width))\"\(extra)/>"
    }

    /// A vertical value axis on the left of the plot area: grid lines and labels at the
    /// ticks of `y`, and the axis label rotated along the left edge.
    static func yAxis(_ layout: ChartLayout, scale y: LinearScale, step: Double, label: String) -> String {
        var out = "<g class=\"y-axis\">"
        for value in Ticks.values(in: y.domain, step: step) {
            let py = y(value)
            out += line(layout.plotLeft, py, layout.plotRight, py, stroke: "#e3e3e3")
            out += text(Ticks.label(value, step: step), x: layout.plotLeft - 5, y: py + 3.5, anchor: "end",
                        extra: " fill=\"#444\"")
        }
        out += line(layout.plotLeft, layout.plotTop, layout.plotLeft, layout.plotBottom, stroke: "#888")
        let middle = (layout.plotTop + layout.plotBottom) / 2
        out += "<text x=\"12\" y=\"\(Markup.coordinate(middle))\" text-anchor=\"middle\" fill=\"#444\" "
            + "transform=\"rotate(-90 12 \(Markup.coordinate(middle)))\">\(Markup.escape(label))</text>"
        return out + "</g>"
    }

    /// A horizontal value axis under the plot area: tick marks and labels at the ticks of
    /// `x` (vertical grid lines when `grid`), and the axis label centred below.
    static func xAxis(_ layout: ChartLayout, scale x: LinearScale, step: Double, label: String,
                      grid: Bool = false) -> String {
        var out = "<g class=\"x-axis\">"
        for value in Ticks.values(in: x.domain, step: step) {
            let px = x(value)
            if grid { out += line(px, layout.plotTop, px, layout.plotBottom, stroke: "#e3e3e3") }
            out += line(px, layout.plotBottom, px, layout.plotBottom + 4, stroke: "#888")
            out += text(Ticks.label(value, step: step), x: px, y: layout.plotBottom + 15, anchor: "middle",
                        extra: " fill=\"#444\"")
        }
        out += line(layout.plotLeft, layout.plotBottom, layout.plotRight, layout.plotBottom, stroke: "#888")
        out += text(label, x: (layout.plotLeft + layout.plotRight) / 2, y: layout.height - 8, anchor: "middle",
                    extra: " fill=\"#444\"")
        return out + "</g>"
    }

    /// The legend in one row under the title, right-aligned to the plot area.
    static func legend(_ entries: [LegendEntry], layout: ChartLayout) -> String {
        guard !entries.isEmpty else { return "" }
        let widths = entries.map { 22 + textWidth($0.name) }
        var x = max(8, layout.plotRight - widths.reduce(0, +))
        let y = 31.0
        var out = "<g class=\"legend\">"
        for (entry, width) in zip(entries, widths) {
            out += "<rect x=\"\(Markup.coordinate(x))\" y=\"\(Markup.coordinate(y - 8))\" width=\"12\" height=\"8\" "
                + "fill=\"\(entry.colour)\"/>"
            out += text(entry.name, x: x + 16, y: y, anchor: "start", extra: " fill=\"#333\"")
            x += width
        }
        return out + "</g>"
    }
}
