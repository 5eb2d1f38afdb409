import Foundation

/// Escaping and number formatting shared by the SVG charts and the HTML page: every piece
/// of text that comes from data (method, class and file names, report texts) goes through
/// `escape` before it is written into the page.
public enum Markup {
    /// `text` with `&`, `<`, `>`, `"` and `'` replaced by character references: safe as
    /// element content and as a quoted attribute value, in HTML and in SVG.
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }

    /// A pixel coordinate rounded to 2 decimals without trailing zeros: 12.5 → "12.5",
    /// 3.0 → "3", −0.254 → "-0.25" (−0 is written "0").
    public static func coordinate(_ value: Double) -> String {
        let rounded = (value * 100).rounded() / 100
        if rounded == 0 { return "0" }
        if rounded == rounded.rounded() { return String(Int(rounded)) }
        var text = String(format: "%.2f", rounded)
        while text.hasSuffix("0") { text.removeLast() }
        return text
    }

    /// A percentage of a fraction with 2 decimals: 0.8127 → "81.27".
    public static func percent(_ fraction: Double) -> String { String(format: "%.2f", fraction * 100) }

    /// "mean ± std" of fractions, as percentages with 2 decimals.
    public static func percent(mean: Double, std: Double) -> String {
        String(format: "%.2f ± %.2f", mean * 100, std * 100)
    }
}
