import Foundation

// Inline SVG charts for the report: a line chart (one line per run) and a grouped bar chart.
// Every chart carries its title, axis titles, tick labels and legend inside its <svg>, so a
// screenshot of one chart is complete on its own. Fonts and colours of text come from the page's
// CSS (classes `chart-title`, `chart-subtitle`, `tick`, `axis-title`, `legend`).

/// A point in data coordinates.
struct ChartPoint: Equatable {
    var x: Double
    var y: Double
}

/// How a run's line looks: colour by algorithm, dash pattern by seed.
struct SeriesStyle: Equatable {
    /// A CSS colour.
    var color: String
    /// An SVG `stroke-dasharray`, nil for a solid line.
    var dash: String?
}

/// One line of a line chart.
struct ChartSeries {
    var label: String
    var style: SeriesStyle
    /// Stretches of consecutive points; a missing (null) value ends one stretch, so the line has
    /// a gap there instead of a fake value.
    var segments: [[ChartPoint]]

    /// Groups values into segments, starting a new one at every nil.
    init(label: String, style: SeriesStyle, values: [(x: Double, y: Double?)]) {
        self.label = label
        self.style = style
        var segments: [[ChartPoint]] = [[]]
        for value in values {
            if let y = value.y, y.isFinite, value.x.isFinite {
                segments[segments.count - 1].append(ChartPoint(x: value.x, y: y))
            } else if !segments[segments.count - 1].isEmpty {
                segments.append([])
            }
        }
        self.segments = segments.filter { !$0.isEmpty }
    }

    var points: [ChartPoint] { segments.flatMap { $0 } }
}

/// An axis: a range and ticks at 1, 2 or 5 times a power of ten.
struct ChartAxis: Equatable {
    var lower: Double
    var upper: Double
    var tickStep: Double

    /// Covers `dataLower...dataUpper` with about `targetTicks` intervals. The range is widened to
    /// whole ticks unless `tight` (used for steps, so that lines reach both ends of the plot). A
    /// degenerate range is widened so that a constant series still gets an axis: all zeros (no
    /// forks, no tool calls) get 0...1, since these counts cannot be negative; any other constant
    /// ±10 %.
    init(dataLower: Double, dataUpper: Double, integers: Bool = false, tight: Bool = false, targetTicks: Int = 5) {
        var low = dataLower, high = dataUpper
        if !(low.isFinite && high.isFinite) || low > high { (low, high) = (0, 1) }
        if high - low <= 1e-12 * max(1, abs(high)) {
            if low == 0 {
                high = 1
            } else {
                (low, high) = (low - abs(low) * 0.1, high + abs(low) * 0.1)
            }
        }
        let rough = (high - low) / Double(targetTicks)
        let power = pow(10, log10(rough).rounded(.down))
        let fraction = rough / power
        var step = (fraction < 1.5 ? 1 : fraction < 3 ? 2 : fraction < 7 ? 5 : 10) * power
        if integers { step = max(step, 1) }
        tickStep = step
        if tight {
            (lower, upper) = (low, high)
        } else {
            // The small tolerances keep 0.3 / 0.1 = 2.9999… from adding a whole extra interval.
            lower = (low / step + 1e-9).rounded(.down) * step
            upper = (high / step - 1e-9).rounded(.up) * step
        }
    }

    /// The multiples of the tick step in the range, each computed as an integer times the step
    /// so that zero is exactly zero.
    var ticks: [Double] {
        let first = Int((lower / tickStep - 1e-9).rounded(.up)), last = Int((upper / tickStep + 1e-9).rounded(.down))
        guard first <= last else { return [] }
        return (first...last).map { Double($0) * tickStep }
    }

    /// Maps a value to a coordinate between `start` (at `lower`) and `end` (at `upper`).
    func position(_ value: Double, from start: Double, to end: Double) -> Double {
        start + (value - lower) / (upper - lower) * (end - start)
    }

    /// A tick label with as many decimals as the tick step needs; 10 000 and above in k, 10 000 000
    /// and above in M.
    func label(_ value: Double) -> String {
        let magnitude = max(abs(lower), abs(upper))
        let (scale, suffix) = magnitude >= 1e7 ? (1e6, "M") : magnitude >= 1e4 ? (1e3, "k") : (1, "")
        let step = tickStep / scale
        let decimals = step >= 1 ? 0 : Int((-log10(step) - 1e-9).rounded(.up))
        // Adding 0 turns −0 into 0.
        return String(format: "%.\(decimals)f", value / scale + 0) + suffix
    }
}

/// Sizes shared by the charts, in SVG user units (the SVG scales to its box's width).
enum ChartLayout {
    static let width = 640.0
    static let left = 70.0
    static let right = 20.0
    static let top = 58.0
    static let plotHeight = 240.0
    static var plotBottom: Double { top + plotHeight }
    static var plotRight: Double { width - right }
    /// Legend rows start below the x tick labels and the x-axis title, if any.
    static func legendTop(hasXTitle: Bool) -> Double { plotBottom + (hasXTitle ? 58 : 40) }
    static let legendRowHeight = 18.0
    /// A rough width of one character of the 12-unit legend font, to wrap legend rows.
    static let legendCharacterWidth = 6.6
}

/// A coordinate with one decimal, which is finer than a pixel at any sensible zoom and keeps the
/// page small.
private func svgCoordinate(_ value: Double) -> String { String(format: "%.1f", value) }

/// The `stroke-dasharray` attribute of a dashed style, or nothing for a solid one.
private func svgDashAttribute(_ style: SeriesStyle) -> String {
    style.dash.map { " stroke-dasharray=\"\($0)\"" } ?? ""
}

/// One entry of a chart's legend: a line sample or a filled swatch, then the label.
struct LegendEntry {
    var label: String
    var style: SeriesStyle
    var isSwatch = false
}

extension String {
    /// The text as HTML (or SVG) character data or attribute value.
    var escapedForHTML: String {
        var escaped = ""
        for character in self {
            switch character {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&#39;"
            default: escaped.append(character)
            }
        }
        return escaped
    }
}

/// The parts every chart shares: the frame, title and subtitle, axis titles and the legend.
struct ChartFrame {
    var title: String
    var subtitle: String
    var xTitle: String?
    var yTitle: String
    var legend: [LegendEntry]

    /// Legend rows: entries wrapped to the plot's width.
    var legendRows: [[(entry: LegendEntry, x: Double)]] {
        var rows: [[(entry: LegendEntry, x: Double)]] = [[]]
        var x = ChartLayout.left
        for entry in legend {
            let width = 30 + Double(entry.label.count) * ChartLayout.legendCharacterWidth + 18
            if x + width > ChartLayout.plotRight && !rows[rows.count - 1].isEmpty {
                rows.append([])
                x = ChartLayout.left
            }
            rows[rows.count - 1].append((entry, x))
            x += width
        }
        return rows.filter { !$0.isEmpty }
    }

    var legendTop: Double { ChartLayout.legendTop(hasXTitle: xTitle != nil) }

    var height: Double { legendTop + Double(legendRows.count) * ChartLayout.legendRowHeight + 6 }

    /// The whole <svg> element around `plot`, the plot area's marks.
    func svg(plot: String) -> String {
        let layout = ChartLayout.self
        var svg = """
            <svg class="chart" viewBox="0 0 \(Int(layout.width)) \(Int(height.rounded(.up)))" role="img" aria-label="\(title.escapedForHTML)">
            <title>\(title.escapedForHTML)</title>
            <text class="chart-title" x="\(svgCoordinate(layout.left))" y="22">\(title.escapedForHTML)</text>
            <text class="chart-subtitle" x="\(svgCoordinate(layout.left))" y="40">\(subtitle.escapedForHTML)</text>

            """
        svg += plot
        if let xTitle {
            svg += "<text class=\"axis-title\" x=\"\(svgCoordinate((layout.left + layout.plotRight) / 2))\" y=\"\(svgCoordinate(layout.plotBottom + 40))\" text-anchor=\"middle\">\(xTitle.escapedForHTML)</text>\n"
        }
        let middle = (layout.top + layout.plotBottom) / 2
        svg += "<text class=\"axis-title\" transform=\"translate(16 \(svgCoordinate(middle))) rotate(-90)\" text-anchor=\"middle\">\(yTitle.escapedForHTML)</text>\n"
        svg += "<g class=\"legend\">\n"
        for (row, entries) in legendRows.enumerated() {
            let y = legendTop + Double(row) * layout.legendRowHeight
            for (entry, x) in entries {
                if entry.isSwatch {
                    svg += "<rect x=\"\(svgCoordinate(x + 8))\" y=\"\(svgCoordinate(y - 9))\" width=\"14\" height=\"10\" fill=\"\(entry.style.color)\"/>"
                } else {
                    svg += "<line x1=\"\(svgCoordinate(x))\" y1=\"\(svgCoordinate(y - 4))\" x2=\"\(svgCoordinate(x + 26))\" y2=\"\(svgCoordinate(y - 4))\" stroke=\"\(entry.style.color)\" stroke-width=\"2.5\"\(svgDashAttribute(entry.style))/>"
                }
                svg += "<text x=\"\(svgCoordinate(x + 32))\" y=\"\(svgCoordinate(y))\">\(entry.label.escapedForHTML)</text>\n"
            }
        }
        svg += "</g>\n</svg>"
        return svg
    }

    /// Horizontal grid lines and y tick labels.
    static func yAxis(_ axis: ChartAxis) -> String {
        let layout = ChartLayout.self
        var svg = "<g class=\"grid\">"
        for tick in axis.ticks {
            let y = axis.position(tick, from: layout.plotBottom, to: layout.top)
            // The zero line is darker when the range spans zero, so signs read at a glance.
            let stroke = tick == 0 && axis.lower < 0 ? "#888" : "#e4e4e4"
            svg += "<line x1=\"\(svgCoordinate(layout.left))\" y1=\"\(svgCoordinate(y))\" x2=\"\(svgCoordinate(layout.plotRight))\" y2=\"\(svgCoordinate(y))\" stroke=\"\(stroke)\"/>"
            svg += "<text class=\"tick\" x=\"\(svgCoordinate(layout.left - 8))\" y=\"\(svgCoordinate(y + 4))\" text-anchor=\"end\">\(axis.label(tick))</text>\n"
        }
        svg += "</g>\n"
        return svg
    }

    /// The plot area's border, drawn over the grid and under the data.
    static var border: String {
        let layout = ChartLayout.self
        return "<rect x=\"\(svgCoordinate(layout.left))\" y=\"\(svgCoordinate(layout.top))\" width=\"\(svgCoordinate(layout.plotRight - layout.left))\" height=\"\(svgCoordinate(layout.plotHeight))\" fill=\"none\" stroke=\"#999\"/>\n"
    }

    /// A message in the middle of an empty plot area.
    static func emptyMessage(_ message: String) -> String {
        let layout = ChartLayout.self
        return "<text class=\"chart-subtitle\" x=\"\(svgCoordinate((layout.left + layout.plotRight) / 2))\" y=\"\(svgCoordinate((layout.top + layout.plotBottom) / 2))\" text-anchor=\"middle\">\(message.escapedForHTML)</text>\n"
    }
}

/// A line chart with one line per series, shared axes and a legend.
struct LineChart {
    var title: String
    var subtitle: String
    var xTitle: String
    var yTitle: String
    var series: [ChartSeries]
    /// Whether x values are whole numbers (steps, tool calls), so ticks fall on integers.
    var xIntegers = true
    /// Whether the x axis ends at the first and last points rather than on round numbers.
    var xTight = true
    /// A fixed y range (accuracy is always 0...1, so runs on different pages compare).
    var yRange: ClosedRange<Double>? = nil
    /// Whether the y range reaches down (or up) to zero, for counts.
    var yIncludesZero = false

    /// Dots on every point when lines are short (evaluations, tiny runs), so a run with one
    /// evaluation still shows; longer lines go without, since dots would hide their dash patterns.
    static let markerLimit = 15

    func svg() -> String {
        let frame = ChartFrame(
            title: title, subtitle: subtitle, xTitle: xTitle, yTitle: yTitle,
            legend: series.map { LegendEntry(label: $0.label, style: $0.style) })
        let points = series.flatMap(\.points)
        guard !points.isEmpty else {
            return frame.svg(plot: ChartFrame.border + ChartFrame.emptyMessage("No data: the value is null at every point of every run."))
        }
        let layout = ChartLayout.self
        let xAxis = ChartAxis(dataLower: points.map(\.x).min()!, dataUpper: points.map(\.x).max()!, integers: xIntegers, tight: xTight)
        var yLower = yRange?.lowerBound ?? points.map(\.y).min()!
        var yUpper = yRange?.upperBound ?? points.map(\.y).max()!
        if yIncludesZero { (yLower, yUpper) = (min(yLower, 0), max(yUpper, 0)) }
        let yAxis = ChartAxis(dataLower: yLower, dataUpper: yUpper)

        var plot = ChartFrame.yAxis(yAxis)
        plot += "<g class=\"grid\">"
        for tick in xAxis.ticks {
            let x = xAxis.position(tick, from: layout.left, to: layout.plotRight)
            plot += "<line x1=\"\(svgCoordinate(x))\" y1=\"\(svgCoordinate(layout.top))\" x2=\"\(svgCoordinate(x))\" y2=\"\(svgCoordinate(layout.plotBottom))\" stroke=\"#f0f0f0\"/>"
            plot += "<text class=\"tick\" x=\"\(svgCoordinate(x))\" y=\"\(svgCoordinate(layout.plotBottom + 17))\" text-anchor=\"middle\">\(xAxis.label(tick))</text>\n"
        }
        plot += "</g>\n"
        plot += ChartFrame.border
        plot += "<g class=\"series\" fill=\"none\" stroke-width=\"2\" stroke-linejoin=\"round\">\n"
        for line in series where !line.segments.isEmpty {
            let showsMarkers = line.points.count <= Self.markerLimit
            var path = ""
            for segment in line.segments {
                for (index, point) in segment.enumerated() {
                    let x = xAxis.position(point.x, from: layout.left, to: layout.plotRight)
                    let y = yAxis.position(point.y, from: layout.plotBottom, to: layout.top)
                    path += "\(index == 0 ? "M" : "L")\(svgCoordinate(x)) \(svgCoordinate(y))"
                }
            }
            plot += "<path d=\"\(path)\" stroke=\"\(line.style.color)\"\(svgDashAttribute(line.style))><title>\(line.label.escapedForHTML)</title></path>\n"
            // A lone point between gaps has no line to show it, so it always gets a dot.
            for segment in line.segments where showsMarkers || segment.count == 1 {
                for point in segment {
                    let x = xAxis.position(point.x, from: layout.left, to: layout.plotRight)
                    let y = yAxis.position(point.y, from: layout.plotBottom, to: layout.top)
                    plot += "<circle cx=\"\(svgCoordinate(x))\" cy=\"\(svgCoordinate(y))\" r=\"2.5\" fill=\"\(line.style.color)\" stroke=\"none\"/>"
                }
            }
            plot += "\n"
        }
        plot += "</g>\n"
        return frame.svg(plot: plot)
    }
}

/// Bars in groups (one group per run), one bar per category, with each bar's value written above it.
struct BarChart {
    struct Group {
        var label: String
        /// One value per category; nil draws no bar.
        var values: [Double?]
    }

    var title: String
    var subtitle: String
    var yTitle: String
    var categories: [LegendEntry]
    var groups: [Group]

    func svg() -> String {
        let frame = ChartFrame(
            title: title, subtitle: subtitle, xTitle: nil, yTitle: yTitle,
            legend: categories.map { LegendEntry(label: $0.label, style: $0.style, isSwatch: true) })
        let values = groups.flatMap { $0.values.compactMap { $0 } }.filter(\.isFinite)
        guard !values.isEmpty else {
            return frame.svg(plot: ChartFrame.border + ChartFrame.emptyMessage("No data: the value is null at every point of every run."))
        }
        let layout = ChartLayout.self
        let yAxis = ChartAxis(dataLower: min(values.min()!, 0), dataUpper: max(values.max()!, 0))
        var plot = ChartFrame.yAxis(yAxis)
        plot += ChartFrame.border
        let groupWidth = (layout.plotRight - layout.left) / Double(groups.count)
        let barWidth = min(48, groupWidth * 0.8 / Double(max(categories.count, 1)))
        let zero = yAxis.position(0, from: layout.plotBottom, to: layout.top)
        for (groupIndex, group) in groups.enumerated() {
            let center = layout.left + (Double(groupIndex) + 0.5) * groupWidth
            let start = center - barWidth * Double(categories.count) / 2
            for (index, value) in group.values.enumerated() {
                guard let value, value.isFinite, index < categories.count else { continue }
                let x = start + Double(index) * barWidth
                let y = yAxis.position(value, from: layout.plotBottom, to: layout.top)
                let tooltip = "\(group.label), \(categories[index].label): \(String(format: "%.3f", value))"
                plot += "<rect x=\"\(svgCoordinate(x + 1))\" y=\"\(svgCoordinate(min(y, zero)))\" width=\"\(svgCoordinate(barWidth - 2))\" height=\"\(svgCoordinate(abs(zero - y)))\" fill=\"\(categories[index].style.color)\"><title>\(tooltip.escapedForHTML)</title></rect>"
                plot += "<text class=\"tick\" x=\"\(svgCoordinate(x + barWidth / 2))\" y=\"\(svgCoordinate(min(y, zero) - 4))\" text-anchor=\"middle\">\(String(format: "%.2f", value))</text>\n"
            }
            plot += "<text class=\"tick\" x=\"\(svgCoordinate(center))\" y=\"\(svgCoordinate(layout.plotBottom + 17))\" text-anchor=\"middle\">\(group.label.escapedForHTML)</text>\n"
        }
        return frame.svg(plot: plot)
    }
}
