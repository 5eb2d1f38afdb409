// A matrix of counts drawn as a small RGB heat map with the counts written in its cells:
// the confusion matrix of a validation, as an image for TensorBoard.

/// A heat map of a rows × columns matrix of non-negative counts (a confusion matrix: rows
/// true classes, columns predicted ones).
///
/// Cell (i, j) is shaded by its share of row i, f = counts[i][j] / Σⱼ counts[i][j] (0 for
/// an empty row; on the diagonal of a confusion matrix, the class's recall), from white
/// (f = 0) to dark blue (f = 1), and shows the count in a 3×5-pixel digit font drawn at
/// twice its size, black on light cells and white where f > 0.5. Cells are squares of side
/// s = max(24, 8·d + 8) pixels for counts of up to d digits, with 1-pixel grey lines
/// between and around them: the image is (columns·(s + 1) + 1) × (rows·(s + 1) + 1).
public struct HeatMapImage: Sendable {
    public let width: Int
    public let height: Int
    /// height × width × 3 bytes, RGB.
    public let pixels: [UInt8]
    /// The side of a cell in pixels, without its grid line.
    public let cellSide: Int

    /// Draws `counts` (rows of equal length, no negative count).
    public init(counts: [[Int]]) {
        let rows = counts.count, columns = counts.first?.count ?? 0
        precondition(counts.allSatisfy { $0.count == columns }, "HeatMapImage: rows of different lengths")
        precondition(counts.joined().allSatisfy { $0 >= 0 }, "HeatMapImage: negative counts")
        let digits = String(counts.joined().max() ?? 0).count
        let side = max(24, 8 * digits + 8)
        let (width, height) = (columns * (side + 1) + 1, rows * (side + 1) + 1)
        var pixels = [UInt8](repeating: 160, count: width * height * 3)   // grid lines: grey
        func paint(_ x: Int, _ y: Int, _ colour: (UInt8, UInt8, UInt8)) {
            let p = (y * width + x) * 3
            (pixels[p], pixels[p + 1], pixels[p + 2]) = colour
        }
        for (i, row) in counts.enumerated() {
            let total = row.reduce(0, +)
            for (j, count) in row.enumerated() {
                let f = total > 0 ? Double(count) / Double(total) : 0
                let shade = { (white: Double, blue: Double) in UInt8((white + (blue - white) * f).rounded()) }
                let background = (shade(255, 8), shade(255, 48), shade(255, 107))
                let (left, top) = (1 + j * (side + 1), 1 + i * (side + 1))
                for y in top..<top + side { for x in left..<left + side { paint(x, y, background) } }
                // The count, centred: digits 6 × 10 pixels, 2 pixels apart.
                let text = Array(String(count)), ink: (UInt8, UInt8, UInt8) = f > 0.5 ? (255, 255, 255) : (0, 0, 0)
                let textLeft = left + (side - (8 * text.count - 2)) / 2, textTop = top + (side - 10) / 2
                for (k, character) in text.enumerated() {
                    let glyph = Self.digits[Int(String(character))!]
                    for gy in 0..<5 {
                        for gx in 0..<3 where glyph[gy] >> (2 - gx) & 1 == 1 {
                            for dy in 0..<2 { for dx in 0..<2 { paint(textLeft + 8 * k + 2 * gx + dx, textTop + 2 * gy + dy, ink) } }
                        }
                    }
                }
            }
        }
        (self.pixels, self.width, self.height, cellSide) = (pixels, width, height, side)
    }

    /// The image as PNG bytes (`PNGWriter`).
    public var png: [UInt8] { PNGWriter.encode(pixels, width: width, height: height, channels: 3) }

    /// The image as a TensorBoard image summary (PNG, RGB).
    public var tensorBoardImage: TensorBoardImage {
        TensorBoardImage(height: height, width: width, colorspace: 3, encoded: png)
    }

    /// 3×5 glyphs of 0–9: five rows of 3 bits each, the high bit on the left.
    private static let digits: [[UInt8]] = [
        [0b111, 0b101, 0b101, 0b101, 0b111], [0b010, 0b110, 0b010, 0b010, 0b111],
        [0b111, 0b001, 0b111, 0b100, 0b111], [0b111, 0b001, 0b111, 0b001, 0b111],
        [0b101, 0b101, 0b111, 0b001, 0b001], [0b111, 0b100, 0b111, 0b001, 0b111],
        [0b111, 0b100, 0b111, 0b101, 0b111], [0b111, 0b001, 0b001, 0b001, 0b001],
        [0b111, 0b101, 0b111, 0b101, 0b111], [0b111, 0b101, 0b111, 0b001, 0b111],
    ]
}
