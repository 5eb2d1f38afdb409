import Foundation

/// A heat map of counts (a confusion matrix: rows = true class, columns = predicted
/// class). Every cell is a `<rect class="cell">` shaded by its count over its row's total
/// — for a confusion matrix the share of the true class predicted as the column, so the
/// diagonal shows each class's recall — from white (0) to dark blue (1), with the count
/// (and, in cells of at least 44 px, the share in %) written inside.
public struct HeatMap: Sendable {
    public var title: String
    public var rowLabels: [String]
    public var columnLabels: [String]
    /// rows × columns.
    public var counts: [[Int]]
    public var rowAxisLabel: String
    public var columnAxisLabel: String
    public var cellSize: Double

    public init(title: String, rowLabels: [String], columnLabels: [String], counts: [[Int]],
                rowAxisLabel: String = "true class", columnAxisLabel: String = "predicted class", cellSize: Double? = nil) {
        precondition(counts.count == rowLabels.count && counts.allSatisfy { $0.count == columnLabels.count },
                     "HeatMap: counts must be \(rowLabels.count) rows × \(columnLabels.count) columns")
        self.title = title
        self.rowLabels = rowLabels
        self.columnLabels = columnLabels
        self.counts = counts
        self.rowAxisLabel = rowAxisLabel
        self.columnAxisLabel = columnAxisLabel
        self.cellSize = cellSize ?? max(28, min(64, 448 / Double(max(rowLabels.count, columnLabels.count, 1))))
    }

    /// The share of row `row`'s total in cell (row, column); 0 for an empty row.
    public func share(row: Int, column: Int) -> Double {
        let total = counts[row].reduce(0, +)
        return total == 0 ? 0 : Double(counts[row][column]) / Double(total)
    }

    /// The fill of a cell of share `f` ∈ [0, 1]: linear from white to rgb(8, 48, 107), the
    /// shades of the TensorBoard confusion images (Formats' `HeatMapImage`).
    public static func fill(share f: Double) -> String {
        let t = min(max(f, 0), 1)
        func channel(_ dark: Double) -> Int { Int((255 + (dark - 255) * t).rounded()) }
        return String(format: "#%02x%02x%02x", channel(8), channel(48), channel(107))
    }

    /// The chart's size and margins (row labels on the left, column labels slanted below).
    public var layout: ChartLayout {
        let rowText = rowLabels.map { ChartFrame.textWidth($0) }.max() ?? 0
        let columnText = columnLabels.map { ChartFrame.textWidth($0) }.max() ?? 0
        let left = rowText + 30, top = 30.0, bottom = columnText * 0.6 + 36
        return ChartLayout(width: max(left + cellSize * Double(columnLabels.count) + 16, 200),
                           height: top + cellSize * Double(rowLabels.count) + bottom,
                           left: left, right: 16, top: top, bottom: bottom)
    }

    /// The heat map as an `<svg>` element.
    public func svg() -> String {
        let layout = self.layout
        var out = ChartFrame.open(layout, title: title, cssClass: "chart heat-map")
        for (r, rowLabel) in rowLabels.enumerated() {
            let y = layout.plotTop + Double(r) * cellSize
            out += ChartFrame.text(rowLabel, x: layout.plotLeft - 6, y: y + cellSize / 2 + 4, anchor: "end",
                                   extra: " fill=\"#222\"")
            for c in columnLabels.indices {
                let x = layout.plotLeft + Double(c) * cellSize
                let f = share(row: r, column: c)
                out += "<rect class=\"cell\" x=\"\(Markup.coordinate(x))\" y=\"\(Markup.coordinate(y))\" "
                    + "width=\"\(Markup.coordinate(cellSize))\" height=\"\(Markup.coordinate(cellSize))\" "
                    + "fill=\"\(Self.fill(share: f))\" stroke=\"#ffffff\"><title>"
                    + Markup.escape("\(rowLabel) → \(columnLabels[c]): \(counts[r][c])") + "</title></rect>"
                let ink = f > 0.5 ? "#ffffff" : "#222222"
                let centreX = x + cellSize / 2
                if cellSize >= 44 {
                    out += ChartFrame.text(String(counts[r][c]), x: centreX, y: y + cellSize / 2 - 1, anchor: "middle",
                                           extra: " fill=\"\(ink)\" font-size=\"12\"")
                    out += ChartFrame.text(String(format: "%.0f%%", f * 100), x: centreX, y: y + cellSize / 2 + 12,
                                           anchor: "middle", extra: " fill=\"\(ink)\" font-size=\"9\"")
                } else {
                    out += ChartFrame.text(String(counts[r][c]), x: centreX, y: y + cellSize / 2 + 4, anchor: "middle",
                                           extra: " fill=\"\(ink)\" font-size=\"10\"")
                }
            }
        }
        let gridBottom = layout.plotTop + Double(rowLabels.count) * cellSize
        for (c, columnLabel) in columnLabels.enumerated() {
            let x = layout.plotLeft + (Double(c) + 0.5) * cellSize
            let y = gridBottom + 12
            out += "<text x=\"\(Markup.coordinate(x))\" y=\"\(Markup.coordinate(y))\" text-anchor=\"end\" fill=\"#222\" "
                + "transform=\"rotate(-35 \(Markup.coordinate(x)) \(Markup.coordinate(y)))\">"
                + Markup.escape(columnLabel) + "</text>"
        }
        out += ChartFrame.text(columnAxisLabel, x: layout.plotLeft + cellSize * Double(columnLabels.count) / 2,
                               y: layout.height - 8, anchor: "middle", extra: " fill=\"#444\"")
        let middle = layout.plotTop + cellSize * Double(rowLabels.count) / 2
        out += "<text x=\"12\" y=\"\(Markup.coordinate(middle))\" text-anchor=\"middle\" fill=\"#444\" "
            + "transform=\"rotate(-90 12 \(Markup.coordinate(middle)))\">\(Markup.escape(rowAxisLabel))</text>"
        return out + ChartFrame.close
    }
}
