import Foundation

/// One piece of the results document: a heading, a table or a paragraph. The document's
/// comparison sections are built as blocks once and written both into the Markdown document and
/// into the HTML page, so the two cannot disagree.
///
/// Text (cells, headings, paragraphs) is Markdown inline text: `code` and **bold** are the only
/// markup, which the HTML rendering turns into `<code>` and `<strong>`.
enum ResultsBlock {
    /// A section heading; level 2 is `##`.
    case heading(String, level: Int)
    case table(ResultsTable)
    case paragraph(String)

    /// The block as Markdown, followed by a blank line.
    var markdown: String {
        switch self {
        case .heading(let text, let level): return String(repeating: "#", count: level) + " " + text + "\n\n"
        case .table(let table): return table.markdown + "\n"
        case .paragraph(let text): return text + "\n\n"
        }
    }

    /// The block as HTML, one element; a level-2 heading is `<h2>`, as the page's own sections.
    var html: String {
        switch self {
        case .heading(let text, let level): return "<h\(level)>\(Self.inlineHTML(text))</h\(level)>\n"
        case .table(let table): return table.html
        case .paragraph(let text): return "<p class=\"note\">\(Self.inlineHTML(text))</p>\n"
        }
    }

    /// Markdown inline text as HTML: escaped, with `code` and **bold** turned into elements.
    static func inlineHTML(_ text: String) -> String {
        var html = ""
        var inCode = false, inBold = false
        var characters = text[...]
        while let character = characters.first {
            if character == "`" {
                html += inCode ? "</code>" : "<code>"
                inCode.toggle()
                characters = characters.dropFirst()
            } else if !inCode && characters.hasPrefix("**") {
                html += inBold ? "</strong>" : "<strong>"
                inBold.toggle()
                characters = characters.dropFirst(2)
            } else {
                html += String(character).escapedForHTML
                characters = characters.dropFirst()
            }
        }
        return html
    }
}

/// A table of the results document: titled columns, left-aligned text or right-aligned numbers.
struct ResultsTable {
    struct Column {
        var title: String
        /// Numbers are right-aligned, text left-aligned.
        var isNumeric: Bool
    }

    var columns: [Column]
    /// One cell per column in each row.
    var rows: [[String]]

    /// The first column is text (what the row is about), every other column a number.
    init(_ titles: [String], rows: [[String]] = []) {
        columns = titles.enumerated().map { Column(title: $1, isNumeric: $0 > 0) }
        self.rows = rows
    }

    init(columns: [Column], rows: [[String]] = []) {
        self.columns = columns
        self.rows = rows
    }

    var markdown: String {
        precondition(rows.allSatisfy { $0.count == columns.count }, "a row has the wrong number of cells")
        var text = "| " + columns.map(\.title).joined(separator: " | ") + " |\n"
        text += "|" + columns.map { $0.isNumeric ? " ---: |" : " --- |" }.joined() + "\n"
        for row in rows { text += "| " + row.joined(separator: " | ") + " |\n" }
        return text
    }

    var html: String {
        precondition(rows.allSatisfy { $0.count == columns.count }, "a row has the wrong number of cells")
        func attribute(_ column: Column) -> String { column.isNumeric ? "" : " class=\"text\"" }
        var html = "<table>\n<tr>" + columns.map { "<th\(attribute($0))>\(ResultsBlock.inlineHTML($0.title))</th>" }.joined() + "</tr>\n"
        for row in rows {
            html += "<tr>" + zip(columns, row).map { "<td\(attribute($0))>\(ResultsBlock.inlineHTML($1))</td>" }.joined() + "</tr>\n"
        }
        return html + "</table>\n"
    }
}
