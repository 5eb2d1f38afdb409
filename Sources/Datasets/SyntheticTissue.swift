// Procedural histology-like patches for the synthetic benchmark (docs/datasets.md).
//
// Tissue is painted as two concentration maps, hematoxylin (nuclei) and eosin (cytoplasm,
// stroma), then turned into RGB by the Beer–Lambert law with per-slide stain vectors:
//   RGB_c = 255 · exp(−(h · s_h · H_c + e · s_e · E_c + b + noise)),
// with Ruifrok & Johnston's optical densities H = (0.650, 0.704, 0.286) and
// E = (0.072, 0.990, 0.105) perturbed per slide. Lengths are in units u = size / 64 pixels,
// so a patch shows the same field of view at every resolution.
import Foundation
import Kernels

/// The classes and latent subtypes of the synthetic benchmark.
public enum SyntheticTaxonomy {
    public static let classNames = ["normal mucosa", "adenocarcinoma", "stroma", "lymphocytes"]
    /// Latent subtypes per class (the reports name them; the images show them, some only weakly).
    public static let subtypeNames: [[String]] = [
        ["unremarkable", "chronic inflammation"],
        ["well differentiated", "moderately differentiated", "poorly differentiated"],
        ["dense fibrous", "loose oedematous"],
        ["lymphoid aggregate", "germinal centre"],
    ]
    /// Subtype frequencies per class (well-differentiated carcinoma, which looks almost
    /// normal, is common on purpose).
    public static let subtypeWeights: [[Float]] = [[0.7, 0.3], [0.4, 0.4, 0.2], [0.6, 0.4], [0.65, 0.35]]

    static func drawSubtype(_ label: Int, _ generator: inout RandomGenerator) -> Int {
        let u = generator.nextFloat()
        var cumulative: Float = 0
        for (k, w) in subtypeWeights[label].enumerated() {
            cumulative += w
            if u < cumulative { return k }
        }
        return subtypeWeights[label].count - 1
    }
}

/// Per-slide staining: stain vectors, concentration scales, background.
struct StainStyle {
    var hematoxylin: (Float, Float, Float)
    var eosin: (Float, Float, Float)
    var hScale: Float
    var eScale: Float
    var background: Float

    /// `difficulty` (0…1) widens every slide-to-slide range by the factor 1 + difficulty
    /// around its centre (multi-centre staining); 0 is the original benchmark, draw for draw.
    init(_ g: inout RandomGenerator, difficulty: Float = 0) {
        let k = 1 + difficulty
        /// A draw from [low, high] widened by k around its centre (exactly [low, high] at k = 1).
        func draw(_ low: Float, _ high: Float, _ g: inout RandomGenerator) -> Float {
            if k == 1 { return g.uniform(low, high) }
            let (centre, half) = ((low + high) / 2, (high - low) / 2 * k)
            return g.uniform(centre - half, centre + half)
        }
        func perturb(_ v: (Float, Float, Float), _ amount: Float, _ g: inout RandomGenerator) -> (Float, Float, Float) {
            (v.0 * draw(1 - amount, 1 + amount, &g), v.1 * draw(1 - amount, 1 + amount, &g), v.2 * draw(1 - amount, 1 + amount, &g))
        }
        hematoxylin = perturb((0.650, 0.704, 0.286), 0.15, &g)
        eosin = perturb((0.072, 0.990, 0.105), 0.15, &g)
        hScale = draw(0.75, 1.25, &g)
        eScale = draw(0.9, 1.5, &g)
        background = max(draw(0.01, 0.08, &g), 0)
    }
}

/// Paints one patch; holds its scratch maps, so use one renderer per thread.
final class TissueRenderer {
    let size: Int
    let unit: Float
    /// 0…1: how far the look-alike subtypes (well-differentiated carcinoma and normal
    /// mucosa; poorly differentiated carcinoma and lymphoid tissue) are drawn together.
    let difficulty: Float
    private var hem: [Float]
    private var eos: [Float]

    init(size: Int, difficulty: Float = 0) {
        self.size = size
        self.difficulty = difficulty
        unit = Float(size) / 64
        hem = [Float](repeating: 0, count: size * size)
        eos = hem
    }

    /// Renders class `label`, subtype `subtype` as uint8 RGB HWC into `output`.
    func render(label: Int, subtype: Int, stain: StainStyle, generator g: inout RandomGenerator,
                into output: UnsafeMutablePointer<UInt8>) {
        for i in 0..<(size * size) { hem[i] = 0; eos[i] = 0 }
        switch label {
        case 0: renderNormal(inflamed: subtype == 1, &g)
        case 1: renderCarcinoma(grade: subtype, &g)
        case 2: renderStroma(loose: subtype == 1, &g)
        default: renderLymphoid(germinalCentre: subtype == 1, &g)
        }
        compose(stain, &g, into: output)
    }

    // MARK: Classes

    private func renderNormal(inflamed: Bool, _ g: inout RandomGenerator) {
        // Lamina propria: loose pink with scattered round cells.
        fillNoise(&eos, base: 0.30, amplitude: 0.10, cells: 4, &g)
        scatterRoundCells(density: inflamed ? 0.030 : 0.010, radius: 1.0, darkness: 1.1, &g)
        // Regular crypts on a jittered grid, cut in cross-section: pale lumen, goblet cells,
        // one basal row of small, regular, radially oriented nuclei.
        placeOnGrid(spacing: 21, jitter: 0.18, &g) { cx, cy, g in
            paintGland(cx: cx, cy: cy, radius: 8.5 * g.uniform(0.9, 1.1), irregularity: 0.05, lumen: 0.42,
                       goblets: 7, rows: [0.86], nucleusScale: 1.0, pleomorphism: 0.1, darkness: 0.85,
                       polarity: true, extraLumens: 0, necrosis: false, &g)
        }
    }

    private func renderCarcinoma(grade: Int, _ g: inout RandomGenerator) {
        // Desmoplastic stroma between tumour glands.
        fillNoise(&eos, base: 0.40, amplitude: 0.08, cells: 4, &g)
        addFibres(amplitude: 0.15, frequency: 0.9, warp: 2.0, &g)
        scatterSpindleCells(count: 8, &g)
        scatterRoundCells(density: 0.008, radius: 1.0, darkness: 1.1, &g)
        switch grade {
        case 0:
            // Well differentiated: crypt-like glands, as normal at a glance; the tells are
            // slightly larger, darker, stratified nuclei and almost no goblet cells.
            // With difficulty d the tells fade towards normal mucosa (d = 1: nuclei 5 % larger
            // and 0.03 darker than normal, 6 goblet cells instead of 7, a second row of nuclei
            // in 30 % of the glands): still there, but subtle.
            let d = difficulty
            placeOnGrid(spacing: 20, jitter: 0.22, &g) { cx, cy, g in
                let stratified = d == 0 || g.chance(1 - 0.7 * d)
                paintGland(cx: cx, cy: cy, radius: 8.8 * g.uniform(0.88, 1.12), irregularity: 0.10 - 0.04 * d, lumen: 0.40,
                           goblets: 1 + Int((5 * d).rounded()), rows: stratified ? [0.86, 0.74] : [0.86],
                           nucleusScale: 1.25 - 0.2 * d, pleomorphism: 0.2 - 0.08 * d, darkness: 1.0 - 0.12 * d,
                           polarity: true, extraLumens: 0, necrosis: false, &g)
            }
        case 1:
            // Moderately differentiated: crowded irregular glands, cribriform lumens,
            // pleomorphic stratified nuclei, dirty necrosis.
            placeOnGrid(spacing: 19, jitter: 0.3, &g) { cx, cy, g in
                paintGland(cx: cx, cy: cy, radius: 9.5 * g.uniform(0.8, 1.25), irregularity: 0.28, lumen: 0.32,
                           goblets: 0, rows: [0.88, 0.74, 0.6], nucleusScale: 1.45, pleomorphism: 0.45, darkness: 1.15,
                           polarity: false, extraLumens: g.nextInt(upperBound: 3), necrosis: g.chance(0.4), &g)
            }
        default:
            // Poorly differentiated: solid nests and sheets of pleomorphic cells, no lumens.
            let nests = 2 + g.nextInt(upperBound: 3)
            for _ in 0..<nests {
                let cx = g.uniform(0, 64), cy = g.uniform(0, 64)
                paintSolidNest(cx: cx, cy: cy, radius: g.uniform(11, 18), &g)
            }
            scatterNuclei(count: 30, radius: 1.6, pleomorphism: 0.5, darkness: 1.2, &g)
        }
    }

    private func renderStroma(loose: Bool, _ g: inout RandomGenerator) {
        fillNoise(&eos, base: loose ? 0.22 : 0.50, amplitude: 0.08, cells: 3, &g)
        addFibres(amplitude: loose ? 0.16 : 0.22, frequency: loose ? 0.55 : 1.1, warp: loose ? 3.5 : 1.5, &g)
        if loose { addClefts(count: 4, &g) }
        scatterSpindleCells(count: loose ? 10 : 22, &g)
        scatterRoundCells(density: 0.003, radius: 1.0, darkness: 1.1, &g)
    }

    private func renderLymphoid(germinalCentre: Bool, _ g: inout RandomGenerator) {
        fillNoise(&eos, base: 0.22, amplitude: 0.06, cells: 4, &g)
        let centre = (x: g.uniform(20, 44), y: g.uniform(20, 44), r: g.uniform(14, 20))
        let u = unit
        placeOnGrid(spacing: 2.7, jitter: 0.35, &g) { cx, cy, g in
            let inside = germinalCentre && hypot(cx - centre.x, cy - centre.y) < centre.r
            if inside {
                // Germinal centre: larger, paler, sparser cells on pinker ground.
                if g.chance(0.45) {
                    paintEllipse(cx: cx * u, cy: cy * u, rx: 1.7 * u * g.uniform(0.85, 1.2), ry: 1.5 * u * g.uniform(0.85, 1.2),
                                 angle: g.uniform(0, .pi), hematoxylin: 0.75, eosinFactor: 0.5)
                }
            } else if g.chance(0.88) {
                let r = 1.15 * u * g.uniform(0.85, 1.15)
                paintEllipse(cx: cx * u, cy: cy * u, rx: r, ry: r * g.uniform(0.85, 1), angle: g.uniform(0, .pi),
                             hematoxylin: 1.35, eosinFactor: 0.4)
            }
        }
        if germinalCentre {   // tingible-body macrophages: pale pink patches in the centre
            for _ in 0..<3 {
                let a = g.uniform(0, 2 * .pi), d = g.uniform(0, centre.r * 0.7)
                paintEllipse(cx: (centre.x + d * cos(a)) * u, cy: (centre.y + d * sin(a)) * u, rx: 2.5 * u, ry: 2 * u,
                             angle: g.uniform(0, .pi), hematoxylin: 0.05, eosinFactor: 1.4)
            }
        }
    }

    // MARK: Structures (coordinates in units of a 64-wide field)

    private func placeOnGrid(spacing: Float, jitter: Float, _ g: inout RandomGenerator,
                             _ body: (Float, Float, inout RandomGenerator) -> Void) {
        let offsetX = g.uniform(0, spacing), offsetY = g.uniform(0, spacing)
        var y = offsetY - spacing
        while y < 64 + spacing {
            var x = offsetX - spacing
            while x < 64 + spacing {
                body(x + spacing * jitter * g.uniform(-1, 1), y + spacing * jitter * g.uniform(-1, 1), &g)
                x += spacing
            }
            y += spacing
        }
    }

    private func paintGland(cx: Float, cy: Float, radius: Float, irregularity: Float, lumen: Float,
                            goblets: Int, rows: [Float], nucleusScale: Float, pleomorphism: Float, darkness: Float,
                            polarity: Bool, extraLumens: Int, necrosis: Bool, _ g: inout RandomGenerator) {
        let u = unit
        // Outline r(θ) = R·(1 + Σ a_k cos(kθ + φ_k)), k = 2, 3, 4.
        let amplitudes = (0..<3).map { _ in irregularity * g.uniform(0.3, 1) / 2 }
        let phases = (0..<3).map { _ in g.uniform(0, 2 * .pi) }
        func outline(_ theta: Float) -> Float {
            var r: Float = 1
            for k in 0..<3 { r += amplitudes[k] * cos(Float(k + 2) * theta + phases[k]) }
            return radius * r
        }
        let (px, py, pr) = (cx * u, cy * u, radius * (1 + irregularity) * u + 2)
        forEachPixel(px - pr, py - pr, px + pr, py + pr) { x, y, i in
            let dx = x - px, dy = y - py
            let rho = (dx * dx + dy * dy).squareRoot() / (outline(atan2(dy, dx)) * u)
            let edge = 1 / (radius * u)                       // one pixel in ρ units
            let epithelium = min(max((1 - rho) / edge + 0.5, 0), 1)
            if epithelium > 0 {
                eos[i] += (0.42 - eos[i]) * epithelium
                hem[i] += (0.06 - hem[i]) * epithelium
            }
            let clear = min(max((lumen - rho) / edge + 0.5, 0), 1)
            if clear > 0 {
                eos[i] += ((necrosis ? 0.62 : 0.03) - eos[i]) * clear
                hem[i] += ((necrosis ? 0.12 : 0.0) - hem[i]) * clear
            }
        }
        if necrosis {   // nuclear debris in the lumen
            for _ in 0..<Int(radius * 0.8) {
                let a = g.uniform(0, 2 * .pi), d = g.uniform(0, lumen * 0.8) * outline(a)
                paintEllipse(cx: (cx + d * cos(a)) * u, cy: (cy + d * sin(a)) * u, rx: 0.6 * u, ry: 0.5 * u,
                             angle: 0, hematoxylin: 1.1, eosinFactor: 1)
            }
        }
        for _ in 0..<extraLumens {   // cribriform: punched-out secondary lumens
            let a = g.uniform(0, 2 * .pi), d = g.uniform(lumen + 0.12, 0.62) * outline(a)
            let r = g.uniform(1.2, 2.2) * u
            paintEllipse(cx: (cx + d * cos(a)) * u, cy: (cy + d * sin(a)) * u, rx: r, ry: r, angle: 0,
                         hematoxylin: 0, eosinFactor: 0.08)
        }
        for _ in 0..<goblets {   // mucin vacuoles between lumen and nuclei
            let a = g.uniform(0, 2 * .pi), d = g.uniform(lumen + 0.08, 0.7) * outline(a)
            paintEllipse(cx: (cx + d * cos(a)) * u, cy: (cy + d * sin(a)) * u, rx: 1.3 * u, ry: 1.0 * u, angle: a,
                         hematoxylin: 0.04, eosinFactor: 0.2)
        }
        for row in rows {
            let circumference = 2 * Float.pi * radius * row
            let n = max(6, Int(circumference / (2.3 * nucleusScale.squareRoot())))
            let start = g.uniform(0, 2 * .pi)
            for k in 0..<n {
                let a = start + 2 * .pi * Float(k) / Float(n) + g.uniform(-0.08, 0.08)
                let d = (row + g.uniform(-0.03, 0.03)) * outline(a)
                let size = nucleusScale * g.uniform(1 - pleomorphism, 1 + pleomorphism)
                paintEllipse(cx: (cx + d * cos(a)) * u, cy: (cy + d * sin(a)) * u,
                             rx: 1.55 * size * u, ry: 0.8 * size * u,
                             angle: polarity ? a : a + g.uniform(-1.2, 1.2),
                             hematoxylin: darkness * g.uniform(0.9, 1.1), eosinFactor: 0.5)
            }
        }
    }

    private func paintSolidNest(cx: Float, cy: Float, radius: Float, _ g: inout RandomGenerator) {
        let u = unit
        let amplitudes = (0..<3).map { _ in g.uniform(0.05, 0.2) }
        let phases = (0..<3).map { _ in g.uniform(0, 2 * .pi) }
        func outline(_ theta: Float) -> Float {
            var r: Float = 1
            for k in 0..<3 { r += amplitudes[k] * cos(Float(k + 2) * theta + phases[k]) }
            return radius * r
        }
        let (px, py, pr) = (cx * u, cy * u, radius * 1.6 * u + 2)
        forEachPixel(px - pr, py - pr, px + pr, py + pr) { x, y, i in
            let dx = x - px, dy = y - py
            let rho = (dx * dx + dy * dy).squareRoot() / (outline(atan2(dy, dx)) * u)
            let inside = min(max((1 - rho) * radius * u + 0.5, 0), 1)
            eos[i] += (0.34 - eos[i]) * inside
        }
        // With difficulty the tumour cells shrink towards lymphocyte size (d = 1: 0.8–1.3).
        let cells = Int(radius * radius * 0.5), largest = 2.0 - 0.7 * difficulty, smallest = 0.9 - 0.1 * difficulty
        for _ in 0..<cells {
            let a = g.uniform(0, 2 * .pi), d = g.uniform(0, 1).squareRoot() * outline(a) * 0.95
            let size = g.uniform(smallest, largest)
            paintEllipse(cx: (cx + d * cos(a)) * u, cy: (cy + d * sin(a)) * u, rx: 1.5 * size * u,
                         ry: 1.1 * size * u, angle: g.uniform(0, .pi), hematoxylin: g.uniform(0.9, 1.4), eosinFactor: 0.5)
        }
    }

    private func scatterRoundCells(density: Float, radius: Float, darkness: Float, _ g: inout RandomGenerator) {
        let count = Int(density * 64 * 64)
        for _ in 0..<count {
            let r = radius * g.uniform(0.85, 1.2) * unit
            paintEllipse(cx: g.uniform(0, 64) * unit, cy: g.uniform(0, 64) * unit, rx: r, ry: r, angle: 0,
                         hematoxylin: darkness, eosinFactor: 0.5)
        }
    }

    private func scatterNuclei(count: Int, radius: Float, pleomorphism: Float, darkness: Float, _ g: inout RandomGenerator) {
        for _ in 0..<count {
            let r = radius * g.uniform(1 - pleomorphism, 1 + pleomorphism) * unit
            paintEllipse(cx: g.uniform(0, 64) * unit, cy: g.uniform(0, 64) * unit, rx: r, ry: r * g.uniform(0.6, 1),
                         angle: g.uniform(0, .pi), hematoxylin: darkness, eosinFactor: 0.5)
        }
    }

    private var fibreAngle: Float = 0

    private func scatterSpindleCells(count: Int, _ g: inout RandomGenerator) {
        for _ in 0..<count {
            paintEllipse(cx: g.uniform(0, 64) * unit, cy: g.uniform(0, 64) * unit,
                         rx: 2.8 * g.uniform(0.8, 1.2) * unit, ry: 0.6 * unit,
                         angle: fibreAngle + g.uniform(-0.35, 0.35), hematoxylin: 0.95, eosinFactor: 0.6)
        }
    }

    /// Wavy collagen fibres: e += A·(½ + ½ sin(f·(x cos θ + y sin θ) + w·n(x, y))), n a smooth noise.
    private func addFibres(amplitude: Float, frequency: Float, warp: Float, _ g: inout RandomGenerator) {
        fibreAngle = g.uniform(0, .pi)
        let (c, s) = (cos(fibreAngle + .pi / 2), sin(fibreAngle + .pi / 2))
        let phase = g.uniform(0, 2 * .pi)
        let field = smoothNoise(cells: 3, &g)
        let f = frequency / unit
        for y in 0..<size {
            for x in 0..<size {
                let i = y * size + x
                let t = f * (Float(x) * c + Float(y) * s) + warp * field[i] + phase
                eos[i] += amplitude * (0.5 + 0.5 * sin(t)) - amplitude * 0.5
            }
        }
    }

    /// Empty clefts (oedema) along the fibres.
    private func addClefts(count: Int, _ g: inout RandomGenerator) {
        for _ in 0..<count {
            paintEllipse(cx: g.uniform(0, 64) * unit, cy: g.uniform(0, 64) * unit, rx: g.uniform(5, 10) * unit,
                         ry: g.uniform(0.8, 1.6) * unit, angle: fibreAngle + g.uniform(-0.2, 0.2),
                         hematoxylin: 0, eosinFactor: 0.15)
        }
    }

    // MARK: Primitives (pixel coordinates)

    /// Calls body(x + ½, y + ½, index) for every pixel whose centre is in the box, clipped.
    @inline(__always)
    private func forEachPixel(_ x0: Float, _ y0: Float, _ x1: Float, _ y1: Float, _ body: (Float, Float, Int) -> Void) {
        let xa = max(Int(x0.rounded(.down)), 0), xb = min(Int(x1.rounded(.up)), size - 1)
        let ya = max(Int(y0.rounded(.down)), 0), yb = min(Int(y1.rounded(.up)), size - 1)
        guard xa <= xb, ya <= yb else { return }
        for y in ya...yb { for x in xa...xb { body(Float(x) + 0.5, Float(y) + 0.5, y * size + x) } }
    }

    /// An antialiased ellipse: hematoxylin blended towards `hematoxylin`, eosin multiplied
    /// towards `eosinFactor`, by coverage.
    private func paintEllipse(cx: Float, cy: Float, rx: Float, ry: Float, angle: Float,
                              hematoxylin: Float, eosinFactor: Float) {
        let (c, s) = (cos(angle), sin(angle))
        let r = max(rx, ry) + 1
        let soft = max(min(rx, ry), 0.5)
        forEachPixel(cx - r, cy - r, cx + r, cy + r) { x, y, i in
            let dx = x - cx, dy = y - cy
            let u = (dx * c + dy * s) / rx, v = (-dx * s + dy * c) / ry
            let d = (u * u + v * v).squareRoot()
            let coverage = min(max((1 - d) * soft + 0.5, 0), 1)
            if coverage > 0 {
                hem[i] += (hematoxylin - hem[i]) * coverage
                eos[i] *= 1 + (eosinFactor - 1) * coverage
            }
        }
    }

    /// A smooth random field in [−1, 1]: bicubic-smoothstep interpolation of a (cells+1)² grid.
    private func smoothNoise(cells: Int, _ g: inout RandomGenerator) -> [Float] {
        let grid = (0..<((cells + 1) * (cells + 1))).map { _ in g.uniform(-1, 1) }
        var field = [Float](repeating: 0, count: size * size)
        let step = Float(cells) / Float(size)
        for y in 0..<size {
            let fy = Float(y) * step, iy = min(Int(fy), cells - 1), ty = fy - Float(iy)
            let sy = ty * ty * (3 - 2 * ty)
            for x in 0..<size {
                let fx = Float(x) * step, ix = min(Int(fx), cells - 1), tx = fx - Float(ix)
                let sx = tx * tx * (3 - 2 * tx)
                let a = grid[iy * (cells + 1) + ix], b = grid[iy * (cells + 1) + ix + 1]
                let c = grid[(iy + 1) * (cells + 1) + ix], d = grid[(iy + 1) * (cells + 1) + ix + 1]
                field[y * size + x] = (a + (b - a) * sx) + ((c + (d - c) * sx) - (a + (b - a) * sx)) * sy
            }
        }
        return field
    }

    private func fillNoise(_ map: inout [Float], base: Float, amplitude: Float, cells: Int, _ g: inout RandomGenerator) {
        let field = smoothNoise(cells: cells, &g)
        for i in 0..<(size * size) { map[i] = base + amplitude * field[i] }
    }

    /// Beer–Lambert composition with per-pixel optical-density noise.
    private func compose(_ stain: StainStyle, _ g: inout RandomGenerator, into output: UnsafeMutablePointer<UInt8>) {
        let (h, e) = (stain.hematoxylin, stain.eosin)
        for i in 0..<(size * size) {
            let hc = max(hem[i], 0) * stain.hScale, ec = max(eos[i], 0) * stain.eScale
            let noise = (g.nextFloat() - 0.5) * 0.08
            let base = stain.background + noise
            let r = 255 * exp(-(hc * h.0 + ec * e.0 + base))
            let gr = 255 * exp(-(hc * h.1 + ec * e.1 + base))
            let b = 255 * exp(-(hc * h.2 + ec * e.2 + base))
            output[3 * i] = UInt8(min(max(r, 0), 255).rounded())
            output[3 * i + 1] = UInt8(min(max(gr, 0), 255).rounded())
            output[3 * i + 2] = UInt8(min(max(b, 0), 255).rounded())
        }
    }
}
