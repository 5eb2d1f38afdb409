import Foundation
import Reporting
import XCTest

/// The values of attribute `name` on every `<tag …>` element of `svg` whose opening tag
/// contains `marker` (e.g. `class="cell"`), in document order.
func attributeValues(_ svg: String, tag: String, marker: String = "", name: String,
                     file: StaticString = #filePath, line: UInt = #line) -> [String] {
    var values: [String] = []
    var rest = svg[...]
    while let open = rest.range(of: "<\(tag) ") {
        let end = rest[open.upperBound...].firstIndex(of: ">") ?? rest.endIndex
        let element = rest[open.lowerBound..<end]
        if marker.isEmpty || element.contains(marker), let attr = element.range(of: " \(name)=\"") {
            let value = element[attr.upperBound...].prefix { $0 != "\"" }
            values.append(String(value))
        }
        rest = rest[end...]
    }
    return values
}

/// Number of non-overlapping occurrences of `needle` in `text`.
func occurrences(_ needle: String, in text: String) -> Int {
    text.components(separatedBy: needle).count - 1
}

final class SVGPlotTests: XCTestCase {
    // Plot area x ∈ [50, 350], y ∈ [20, 220] (y grows downwards).
    let layout = ChartLayout(width: 400, height: 300, left: 50, right: 50, top: 20, bottom: 80)

    func testLineChartPolylineMapsDataToThePlotArea() {
        // x domain = the points' extent [0, 10] → [50, 350]; y domain [0, 1] → [220, 20]:
        // (0, 0) → (50, 220), (5, 0.5) → (200, 120), (10, 1) → (350, 20); (2.5, 0.25) → (125, 170).
        let chart = LineChart(title: "t", xLabel: "step", yLabel: "loss", series: [
            .init(name: "seed 0", colour: "#000", points: [(0, 0), (5, 0.5), (10, 1)]),
            .init(name: "seed 1", colour: "#111", points: [(2.5, 0.25), (3, .nan), (5, 0.5)]),
        ], layout: layout, yDomain: 0...1)
        let points = attributeValues(chart.svg(), tag: "polyline", name: "points")
        XCTAssertEqual(points, ["50,220 200,120 350,20", "125,170 200,120"], "the NaN point is left out")
        XCTAssertEqual(occurrences("<circle", in: chart.svg()), 5, "sparse series get a dot per point")
    }

    func testLineChartWidensTheYExtentToNiceTicks() {
        let chart = LineChart(title: "t", xLabel: "x", yLabel: "y", series: [
            .init(name: "a", colour: "#000", points: [(1, 0.13), (3, 0.87)]),
        ], layout: layout)
        // span 0.74 → step 0.2 (the 1-2-5 value above 0.74/5) → [0, 1]; x stays [1, 3].
        XCTAssertEqual(chart.resolvedYDomain, 0...1)
        XCTAssertEqual(chart.resolvedXDomain, 1...3)
        XCTAssertEqual(attributeValues(chart.svg(), tag: "polyline", name: "points"), ["50,194 350,46"])
        let fromZero = LineChart(title: "t", xLabel: "x", yLabel: "y", series: chart.series, layout: layout,
                                 yFromZero: true)
        XCTAssertEqual(fromZero.resolvedYDomain.lowerBound, 0)
    }

    func testTicksAreMultiplesOfOneTwoOrFive() {
        XCTAssertEqual(Ticks.step(span: 1), 0.2, accuracy: 1e-12)
        XCTAssertEqual(Ticks.step(span: 120), 50, accuracy: 1e-12)
        XCTAssertEqual(Ticks.step(span: 0.074), 0.02, accuracy: 1e-12)
        XCTAssertEqual(Ticks.niceDomain(0.31, 0.97), 0.2...1.0, "step 0.2 for a span of 0.66")
        let single = Ticks.niceDomain(2, 2)
        XCTAssertEqual(single.lowerBound, 1.8, accuracy: 1e-9, "one value spans ±10%")
        XCTAssertEqual(single.upperBound, 2.2, accuracy: 1e-9)
        let ticks = Ticks.values(in: 0...1, step: 0.2)
        XCTAssertEqual(ticks.count, 6)
        XCTAssertEqual(ticks.map { Ticks.label($0, step: 0.2) }, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"])
        XCTAssertEqual(Ticks.values(in: 0...120, step: 50).map { Ticks.label($0, step: 50) }, ["0", "50", "100"])
    }

    func testTextFromDataIsEscaped() {
        let hostile = "a<b>&\"c'"
        let svg = LineChart(title: hostile, xLabel: hostile, yLabel: "y", series: [
            .init(name: hostile, colour: "#000", points: [(0, 1), (1, 2)]),
        ]).svg()
        XCTAssertFalse(svg.contains("<b>"), "raw markup from data must not reach the SVG")
        XCTAssertTrue(svg.contains("a&lt;b&gt;&amp;&quot;c&#39;"))
        XCTAssertEqual(Markup.escape("<&>\"'"), "&lt;&amp;&gt;&quot;&#39;")
    }

    func testHeatMapHasOneCellPerPairShadedByRowShare() {
        let counts = [[8, 2, 0], [0, 0, 0], [1, 1, 2]]
        let map = HeatMap(title: "confusion", rowLabels: ["x", "y", "<z>"], columnLabels: ["x", "y", "<z>"], counts: counts)
        let svg = map.svg()
        let fills = attributeValues(svg, tag: "rect", marker: "class=\"cell\"", name: "fill")
        XCTAssertEqual(fills.count, 9, "c × c cells")
        XCTAssertEqual(map.share(row: 0, column: 0), 0.8, accuracy: 1e-12)
        XCTAssertEqual(fills[0], HeatMap.fill(share: 0.8))
        XCTAssertEqual(fills[3], "#ffffff", "an empty row is white")
        XCTAssertEqual(fills[8], HeatMap.fill(share: 0.5))
        XCTAssertEqual(HeatMap.fill(share: 1), "#08306b")
        XCTAssertEqual(HeatMap.fill(share: 0.5), "#8498b5")
        XCTAssertEqual(HeatMap.fill(share: 0), "#ffffff")
        XCTAssertTrue(svg.contains(">&lt;z&gt;</text>"))
        XCTAssertFalse(svg.contains("<z>"))
    }

    func testErrorBarChartDrawsMeanStdAndEverySeed() throws {
        let chart = ErrorBarChart(title: "acc", valueLabel: "%", categories: [
            .init(name: "a", values: [80, 90], colours: ["#000", "#111"]),
            .init(name: "b", values: [50, 60, 70], colours: ["#000", "#111", "#222"]),
        ], valueDomain: 0...100)
        let svg = chart.svg()
        let x = chart.scale
        let widths = attributeValues(svg, tag: "rect", marker: "class=\"bar\"", name: "width").compactMap(Double.init)
        XCTAssertEqual(widths.count, 2)
        XCTAssertEqual(widths[0], x(85) - x(0), accuracy: 0.01)
        XCTAssertEqual(widths[1], x(60) - x(0), accuracy: 0.01)
        // Whisker of "a": mean 85 ± sample std √50.
        let x1 = attributeValues(svg, tag: "line", marker: "class=\"error-bar\"", name: "x1").compactMap(Double.init)
        let x2 = attributeValues(svg, tag: "line", marker: "class=\"error-bar\"", name: "x2").compactMap(Double.init)
        XCTAssertEqual(x1.count, 2)
        XCTAssertEqual(x1[0], x(85 - 50.0.squareRoot()), accuracy: 0.01)
        XCTAssertEqual(x2[0], x(85 + 50.0.squareRoot()), accuracy: 0.01)
        XCTAssertEqual(x2[1], x(70), accuracy: 0.01, "b: 60 ± 10")
        let dots = attributeValues(svg, tag: "circle", marker: "class=\"point\"", name: "cx").compactMap(Double.init)
        XCTAssertEqual(dots.count, 5, "one dot per seed")
        XCTAssertEqual(dots[4], x(70), accuracy: 0.01)
        XCTAssertTrue(svg.contains("85.00 ± 7.07 (n=2)"))
    }

    func testHistogramBarsAreSharesOfEachSeries() {
        let layout = ChartLayout(width: 440, height: 240, left: 40, right: 0, top: 40, bottom: 0)
        let chart = HistogramChart(title: "scores", xLabel: "cosine", lower: -1, upper: 1, series: [
            .init(name: "train", colour: "#000", counts: [0, 2, 6, 0]),
            .init(name: "test", colour: "#111", counts: [1, 1, 1, 1]),
        ], layout: layout)
        let svg = chart.svg()
        let heights = attributeValues(svg, tag: "rect", marker: "class=\"bin\"", name: "height").compactMap(Double.init)
        XCTAssertEqual(heights.count, 6, "empty bins draw no bar")
        // y: [0, 0.75 → nice 0.8] onto [240, 40]: 200 px for 0.8, so share 0.75 → 187.5 px.
        XCTAssertEqual(chart.scales.y.domain, 0...0.8)
        XCTAssertEqual(heights[1], 187.5, accuracy: 0.01)
        XCTAssertEqual(heights[0], 62.5, accuracy: 0.01, "share 0.25")
        let xs = attributeValues(svg, tag: "rect", marker: "class=\"bin\"", name: "x").compactMap(Double.init)
        // Bin 1 covers [−0.5, 0) → x ∈ [140, 240]; train's bar is the first half.
        XCTAssertEqual(xs[0], 140.5, accuracy: 0.01)
    }
}
