import Foundation

/// A self-contained HTML page: one file that a browser shows from disk, without a server
/// or a network. Styles are inline (`<style>`), charts are inline SVG, images are
/// `data:image/png;base64` URIs; the page holds no script and no reference to another
/// file or URL. Section bodies are HTML built with `HTML`, whose helpers escape text.
public struct HTMLReport: Sendable {
    public struct Section: Sendable {
        /// The anchor (`#id`) the table of contents links to.
        public var id: String
        public var title: String
        public var body: String
    }

    public var title: String
    /// Lines of text under the title (escaped when rendered).
    public var intro: [String]
    public private(set) var sections: [Section] = []

    public init(title: String, intro: [String] = []) {
        self.title = title
        self.intro = intro
    }

    /// Appends a section; `body` is HTML.
    public mutating func addSection(id: String, title: String, body: String) {
        sections.append(Section(id: id, title: title, body: body))
    }

    /// The whole page.
    public func render() -> String {
        var out = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        out += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        out += "<title>\(Markup.escape(title))</title>\n<style>\n\(Self.style)</style>\n</head>\n<body>\n<main>\n"
        out += "<h1>\(Markup.escape(title))</h1>\n"
        for line in intro { out += "<p class=\"intro\">\(Markup.escape(line))</p>\n" }
        if sections.count > 1 {
            out += "<nav>" + sections.map { "<a href=\"#\(Markup.escape($0.id))\">\(Markup.escape($0.title))</a>" }
                .joined(separator: " · ") + "</nav>\n"
        }
        for section in sections {
            out += "<section id=\"\(Markup.escape(section.id))\">\n<h2>\(Markup.escape(section.title))</h2>\n"
            out += section.body + "\n</section>\n"
        }
        return out + "</main>\n</body>\n</html>\n"
    }

    /// The page's style sheet: system fonts only (no web font is fetched).
    static let style = """
        body { margin: 0; background: #f6f7f9; color: #1d232b; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; }
        main { max-width: 1240px; margin: 0 auto; padding: 16px 28px 48px; }
        h1 { font-size: 24px; margin: 12px 0 6px; }
        h2 { font-size: 19px; margin: 30px 0 8px; padding-top: 10px; border-top: 2px solid #d5dae1; }
        h3 { font-size: 15px; margin: 20px 0 6px; }
        p.intro { margin: 2px 0; color: #4a5563; }
        p.note { color: #4a5563; margin: 4px 0 10px; max-width: 980px; }
        nav { margin: 12px 0 4px; font-size: 13px; }
        nav a { color: #2b5d9b; text-decoration: none; }
        .row { display: flex; flex-wrap: wrap; gap: 10px; align-items: flex-start; }
        .row > * { flex: 0 0 auto; }
        .row > table { margin-top: 0; }
        .block { width: 580px; max-width: 100%; }
        .block h3 { margin-top: 12px; }
        .block td { white-space: nowrap; }
        svg.chart { background: #fff; border: 1px solid #dde2e8; border-radius: 4px; max-width: 100%; height: auto; }
        table { border-collapse: collapse; background: #fff; margin: 6px 0 10px; font-size: 13px; }
        th, td { border: 1px solid #dde2e8; padding: 4px 9px; text-align: left; }
        th { background: #eef1f5; font-weight: 600; }
        td.number { text-align: right; font-variant-numeric: tabular-nums; }
        ul.lines { margin: 4px 0 8px; padding-left: 20px; }
        .gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr)); gap: 10px; }
        .example { display: flex; gap: 10px; margin: 0; padding: 8px; background: #fff; border: 1px solid #dde2e8;
                   border-left: 4px solid #59a14f; border-radius: 4px; }
        .example.mismatch { border-left-color: #e15759; }
        .example.unknown { border-left-color: #bab0ac; }
        .example img { width: 96px; height: 96px; flex: 0 0 96px; border-radius: 2px; }
        .example figcaption { font-size: 12px; min-width: 0; }
        .example .meta { color: #4a5563; }
        .example .verdict { font-weight: 600; color: #2f7a2a; }
        .example.mismatch .verdict { color: #b3282d; }
        .example.unknown .verdict { color: #6b6b6b; }
        .example blockquote { margin: 4px 0 0; color: #1d232b; overflow-wrap: anywhere; }
        details summary { cursor: pointer; color: #2b5d9b; font-size: 12px; }
        details p { font-size: 12px; margin: 4px 0; overflow-wrap: anywhere; }

        """
}

/// Small HTML builders; every text argument is escaped.
public enum HTML {
    /// A table; cells are text, `numeric` columns right-aligned.
    public static func table(header: [String], rows: [[String]], numeric: Set<Int> = []) -> String {
        var out = "<table>\n<thead><tr>" + header.map { "<th>\(Markup.escape($0))</th>" }.joined() + "</tr></thead>\n<tbody>\n"
        for row in rows {
            out += "<tr>" + row.enumerated().map { i, cell in
                numeric.contains(i) ? "<td class=\"number\">\(Markup.escape(cell))</td>" : "<td>\(Markup.escape(cell))</td>"
            }.joined() + "</tr>\n"
        }
        return out + "</tbody>\n</table>"
    }

    /// A paragraph of explanatory text.
    public static func note(_ text: String) -> String { "<p class=\"note\">\(Markup.escape(text))</p>" }

    /// A heading of a part of a section.
    public static func heading(_ text: String) -> String { "<h3>\(Markup.escape(text))</h3>" }

    /// A bulleted list of text lines.
    public static func list(_ lines: [String]) -> String {
        "<ul class=\"lines\">" + lines.map { "<li>\(Markup.escape($0))</li>" }.joined() + "</ul>"
    }

    /// Pieces of HTML laid out side by side, wrapping.
    public static func row(_ items: [String]) -> String { "<div class=\"row\">" + items.joined() + "</div>" }

    /// An `<img>` showing PNG bytes inline as a `data:` URI.
    public static func pngImage(_ png: [UInt8], width: Int, height: Int, alt: String) -> String {
        "<img src=\"data:image/png;base64,\(Data(png).base64EncodedString())\" width=\"\(width)\" height=\"\(height)\" "
            + "alt=\"\(Markup.escape(alt))\">"
    }
}
