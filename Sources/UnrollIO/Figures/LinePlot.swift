import Foundation

/// A line chart drawn into an RGB `Raster`: named series, linear or log₁₀ axes, ticks with numeric
/// labels, grid, axis titles, a title and a legend.
///
/// Points with a non-finite coordinate (or ≤ 0 on a log axis) are skipped and break the line;
/// empty series draw nothing. Ranges are automatic (rounded out to ticks / decades) unless set.
public struct LinePlot: Sendable {
    public enum Scale: Sendable, Equatable { case linear, log10 }
    public enum LegendPosition: Sendable, Equatable { case auto, topRight, topLeft, bottomRight, bottomLeft, none }

    public struct Series: Sendable {
        public var name: String
        public var x: [Double]
        public var y: [Double]
        /// nil = the next colour of `Color.palette`.
        public var color: Color?

        public init(_ name: String, x: [Double], y: [Double], color: Color? = nil) {
            precondition(x.count == y.count, "series \(name): \(x.count) x values but \(y.count) y values")
            self.name = name
            self.x = x
            self.y = y
            self.color = color
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var xScale: Scale
    public var yScale: Scale
    public var width: Int
    public var height: Int
    /// Font scale (2 = 10×14-pixel glyphs).
    public var textScale: Int = 2
    public var lineThickness: Int = 2
    /// Draw a small square at every point as well as the lines.
    public var showMarkers: Bool = false
    /// Axis ranges in data units; nil = automatic.
    public var xRange: ClosedRange<Double>?
    public var yRange: ClosedRange<Double>?
    /// `.auto` puts the legend in the inside corner covering the fewest curve pixels.
    public var legend: LegendPosition = .auto
    public var series: [Series] = []

    public init(title: String = "", xLabel: String = "", yLabel: String = "",
                xScale: Scale = .linear, yScale: Scale = .linear, width: Int = 800, height: Int = 500) {
        precondition(width >= 100 && height >= 80, "line plot needs at least 100×80 pixels")
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.xScale = xScale
        self.yScale = yScale
        self.width = width
        self.height = height
    }

    public mutating func add(_ name: String, x: [Double], y: [Double], color: Color? = nil) {
        series.append(Series(name, x: x, y: y, color: color))
    }

    /// A series plotted against its index 0, 1, 2, …
    public mutating func add(_ name: String, y: [Double], color: Color? = nil) {
        add(name, x: y.indices.map(Double.init), y: y, color: color)
    }

    /// The colour series `index` is drawn in.
    public func color(ofSeries index: Int) -> Color {
        series[index].color ?? Color.palette[index % Color.palette.count]
    }

    // MARK: geometry

    /// Where the data go: the pixel box inside the axes and the mapping from data to pixels.
    public struct Frame: Sendable {
        /// Inclusive pixel bounds of the plotting area (the axes lines lie just outside).
        public let left: Int, top: Int, right: Int, bottom: Int
        /// Axis ranges in transformed units (log₁₀ of the data on a log axis).
        public let xMin: Double, xMax: Double, yMin: Double, yMax: Double
        public let xScale: Scale, yScale: Scale

        /// Horizontal pixel position of data value x (fractional; nil if not drawable).
        public func pixelX(_ x: Double) -> Double? {
            guard let t = Frame.transform(x, xScale) else { return nil }
            return Double(left) + (t - xMin) / (xMax - xMin) * Double(right - left)
        }

        /// Vertical pixel position of data value y (fractional; nil if not drawable).
        public func pixelY(_ y: Double) -> Double? {
            guard let t = Frame.transform(y, yScale) else { return nil }
            return Double(bottom) - (t - yMin) / (yMax - yMin) * Double(bottom - top)
        }

        static func transform(_ v: Double, _ s: Scale) -> Double? {
            switch s {
            case .linear: return v.isFinite ? v : nil
            case .log10: return v.isFinite && v > 0 ? Foundation.log10(v) : nil
            }
        }
    }

    struct Tick {
        var value: Double   // transformed units
        var label: String?  // nil = minor tick
    }

    public func frame() -> Frame { layout().frame }

    private func layout() -> (frame: Frame, xTicks: [Tick], yTicks: [Tick]) {
        let (x0, x1) = axisRange(values: series.flatMap(\.x), scale: xScale, fixed: xRange, target: 8)
        let (y0, y1) = axisRange(values: series.flatMap(\.y), scale: yScale, fixed: yRange, target: 6)
        let xTicks = ticks(x0, x1, scale: xScale, target: 8)
        let yTicks = ticks(y0, y1, scale: yScale, target: 6)
        let glyphH = BitmapFont.glyphHeight * textScale, pad = 12, tickLength = 6
        let yLabelWidth = yTicks.compactMap(\.label).map { BitmapFont.size(of: $0, scale: textScale).width }.max() ?? 0
        let lastXLabel = xTicks.last(where: { $0.label != nil })?.label ?? ""
        let left = pad + (yLabel.isEmpty ? 0 : glyphH + 10) + yLabelWidth + tickLength + 6
        let top = pad + (title.isEmpty ? 0 : glyphH + 12) + glyphH / 2
        let bottom = height - (pad + (xLabel.isEmpty ? 0 : glyphH + 10) + glyphH + tickLength + 6)
        let right = width - Swift.max(pad + 4, BitmapFont.size(of: lastXLabel, scale: textScale).width / 2 + pad)
        precondition(right - left >= 10 && bottom - top >= 10, "line plot \(width)×\(height) is too small for its labels")
        let frame = Frame(left: left, top: top, right: right, bottom: bottom,
                          xMin: x0, xMax: x1, yMin: y0, yMax: y1, xScale: xScale, yScale: yScale)
        return (frame, xTicks, yTicks)
    }

    /// Axis limits in transformed units: the fixed range, or the data's, rounded out to nice values.
    private func axisRange(values: [Double], scale: Scale, fixed: ClosedRange<Double>?, target: Int) -> (Double, Double) {
        if let r = fixed, let a = Frame.transform(r.lowerBound, scale), let b = Frame.transform(r.upperBound, scale), a < b {
            return (a, b)
        }
        let t = values.compactMap { Frame.transform($0, scale) }
        guard var lo = t.min(), var hi = t.max() else { return (0, 1) }
        switch scale {
        case .linear:
            if lo == hi {
                let half = 0.5 * Swift.max(abs(lo), 1)
                (lo, hi) = (lo - half, hi + half)
            }
            let step = niceStep((hi - lo) / Double(target))
            return ((lo / step).rounded(.down) * step, (hi / step).rounded(.up) * step)
        case .log10:
            if lo == hi { (lo, hi) = (lo - 0.5, hi + 0.5) }
            return (lo.rounded(.down), hi.rounded(.up))
        }
    }

    /// 1, 2 or 5 times a power of ten, at least `raw`.
    private func niceStep(_ raw: Double) -> Double {
        guard raw > 0 && raw.isFinite else { return 1 }
        let p = Foundation.pow(10, Foundation.floor(Foundation.log10(raw)))
        for m in [1.0, 2, 5, 10] where m * p >= raw * (1 - 1e-9) { return m * p }
        return 10 * p
    }

    private func ticks(_ lo: Double, _ hi: Double, scale: Scale, target: Int) -> [Tick] {
        let eps = 1e-9 * (hi - lo)
        switch scale {
        case .linear:
            let step = niceStep((hi - lo) / Double(target))
            var out: [Tick] = []
            var k = (lo / step - 1e-9).rounded(.up)
            while k * step <= hi + eps {
                let v = abs(k * step) < step * 1e-9 ? 0 : k * step
                out.append(Tick(value: v, label: formatLinear(v, step: step)))
                k += 1
            }
            return out
        case .log10:
            let first = Int((lo - 1e-9).rounded(.up)), last = Int((hi + 1e-9).rounded(.down))
            let decades = last - first + 1
            var out: [Tick] = []
            let every = Swift.max(1, (decades + target - 1) / target)
            if decades >= 1 {
                for k in first...last {
                    out.append(Tick(value: Double(k), label: (k - first) % every == 0 ? formatPower(1, k) : nil))
                }
            }
            // Minor ticks at 2…9 × 10^k when the decades are wide enough to show them; labelled 2 and 5
            // when fewer than two decades are visible.
            let labelSubs = decades < 2
            if decades <= 12 {
                for k in (first - 1)...(last + 1) {
                    for j in 2...9 {
                        let v = Double(k) + Foundation.log10(Double(j))
                        if v >= lo - eps && v <= hi + eps {
                            out.append(Tick(value: v, label: labelSubs && (j == 2 || j == 5) ? formatPower(j, k) : nil))
                        }
                    }
                }
            }
            return out
        }
    }

    private func formatLinear(_ v: Double, step: Double) -> String {
        let magnitude = Swift.max(abs(v), step)
        if magnitude >= 1e5 || step < 1e-4 { return formatScientific(v) }
        let decimals = Swift.max(0, Int((-Foundation.log10(step) - 1e-9).rounded(.up)))
        return String(format: "%.\(decimals)f", v)
    }

    private func formatScientific(_ v: Double) -> String {
        if v == 0 { return "0" }
        let k = Int(Foundation.floor(Foundation.log10(abs(v))))
        let mantissa = v / Foundation.pow(10, Double(k))
        var m = String(format: "%.2f", mantissa)
        while m.hasSuffix("0") { m.removeLast() }
        if m.hasSuffix(".") { m.removeLast() }
        return "\(m)e\(k)"
    }

    /// j·10^k as "0.02", "500" or "2e-5".
    private func formatPower(_ j: Int, _ k: Int) -> String {
        if k >= 0 && k <= 3 { return String(j * Int(Foundation.pow(10, Double(k)))) }
        if k < 0 && k >= -3 { return String(format: "%.\(-k)f", Double(j) * Foundation.pow(10, Double(k))) }
        return "\(j)e\(k)"
    }

    // MARK: drawing

    public func render() -> Raster {
        let (f, xTicks, yTicks) = layout()
        var r = Raster(width: width, height: height, channels: 3, fill: 255)
        let s = textScale, glyphH = BitmapFont.glyphHeight * s, tickLength = 6

        // Grid at labelled ticks, then the curves, then axes and labels on top.
        for t in xTicks where t.label != nil {
            if let px = f.pixelX(untransform(t.value, f.xScale)) {
                r.fillRect(x: Int(px.rounded()), y: f.top, width: 1, height: f.bottom - f.top + 1, .lightGray)
            }
        }
        for t in yTicks where t.label != nil {
            if let py = f.pixelY(untransform(t.value, f.yScale)) {
                r.fillRect(x: f.left, y: Int(py.rounded()), width: f.right - f.left + 1, height: 1, .lightGray)
            }
        }
        var plotted = Raster(width: width, height: height, channels: 1, fill: 0)   // curve mask for the legend
        for (i, s) in series.enumerated() { drawSeries(s, color: color(ofSeries: i), frame: f, into: &r, mask: &plotted) }

        // Axes box.
        r.strokeRect(x: f.left - 1, y: f.top - 1, width: f.right - f.left + 3, height: f.bottom - f.top + 3, .black)
        for t in xTicks {
            guard let px = f.pixelX(untransform(t.value, f.xScale)) else { continue }
            let x = Int(px.rounded()), len = t.label == nil ? tickLength / 2 : tickLength
            r.fillRect(x: x, y: f.bottom + 2, width: 1, height: len, .black)
            if let label = t.label { r.drawTextCentered(label, centerX: x, y: f.bottom + 2 + tickLength + 4, scale: s) }
        }
        for t in yTicks {
            guard let py = f.pixelY(untransform(t.value, f.yScale)) else { continue }
            let y = Int(py.rounded()), len = t.label == nil ? tickLength / 2 : tickLength
            r.fillRect(x: f.left - 1 - len, y: y, width: len, height: 1, .black)
            if let label = t.label {
                let w = BitmapFont.size(of: label, scale: s).width
                r.drawText(label, x: f.left - 1 - tickLength - 4 - w, y: y - glyphH / 2, scale: s)
            }
        }
        if !title.isEmpty { r.drawTextCentered(title, centerX: (f.left + f.right) / 2, y: 12, scale: s) }
        if !xLabel.isEmpty {
            r.drawTextCentered(xLabel, centerX: (f.left + f.right) / 2, y: height - 12 - glyphH, scale: s)
        }
        if !yLabel.isEmpty {
            let length = BitmapFont.size(of: yLabel, scale: s).width
            r.drawTextVertical(yLabel, x: 12, y: (f.top + f.bottom) / 2 - length / 2, scale: s)
        }
        drawLegend(frame: f, into: &r, mask: plotted)
        return r
    }

    private func untransform(_ t: Double, _ scale: Scale) -> Double {
        scale == .linear ? t : Foundation.pow(10, t)
    }

    private func drawSeries(_ s: Series, color: Color, frame f: Frame, into r: inout Raster, mask: inout Raster) {
        var previous: (Double, Double)?
        var pieces: [[(Double, Double)]] = [[]]
        for (x, y) in zip(s.x, s.y) {
            if let px = f.pixelX(x), let py = f.pixelY(y) {
                pieces[pieces.count - 1].append((px, py))
                previous = (px, py)
            } else if previous != nil {
                pieces.append([])
                previous = nil
            }
        }
        let box = (Double(f.left), Double(f.top), Double(f.right), Double(f.bottom))
        for piece in pieces {
            if piece.count == 1 || showMarkers {
                for (px, py) in piece where px >= box.0 && px <= box.2 && py >= box.1 && py <= box.3 {
                    let (x, y) = (Int(px.rounded()), Int(py.rounded()))
                    r.fillRect(x: x - 2, y: y - 2, width: 5, height: 5, color)
                    mask.fillRect(x: x - 2, y: y - 2, width: 5, height: 5, .white)
                }
            }
            for k in 1..<Swift.max(1, piece.count) {
                guard let (a, b) = clip(piece[k - 1], piece[k], box) else { continue }
                let (x0, y0, x1, y1) = (Int(a.0.rounded()), Int(a.1.rounded()), Int(b.0.rounded()), Int(b.1.rounded()))
                r.drawLine(x0: x0, y0: y0, x1: x1, y1: y1, color, thickness: lineThickness)
                mask.drawLine(x0: x0, y0: y0, x1: x1, y1: y1, .white, thickness: lineThickness)
            }
        }
    }

    /// Liang–Barsky clipping of segment a→b to the box (left, top, right, bottom).
    private func clip(_ a: (Double, Double), _ b: (Double, Double),
                      _ box: (Double, Double, Double, Double)) -> ((Double, Double), (Double, Double))? {
        let dx = b.0 - a.0, dy = b.1 - a.1
        var t0 = 0.0, t1 = 1.0
        for (p, q) in [(-dx, a.0 - box.0), (dx, box.2 - a.0), (-dy, a.1 - box.1), (dy, box.3 - a.1)] {
            if p == 0 {
                if q < 0 { return nil }
            } else {
                let t = q / p
                if p < 0 { t0 = Swift.max(t0, t) } else { t1 = Swift.min(t1, t) }
                if t0 > t1 { return nil }
            }
        }
        return ((a.0 + t0 * dx, a.1 + t0 * dy), (a.0 + t1 * dx, a.1 + t1 * dy))
    }

    private func drawLegend(frame f: Frame, into r: inout Raster, mask: Raster) {
        let entries = series.indices.filter { !series[$0].name.isEmpty }
        guard !entries.isEmpty, legend != .none else { return }
        let s = textScale, glyphH = BitmapFont.glyphHeight * s, sample = 28, rowH = glyphH + 8
        let textW = entries.map { BitmapFont.size(of: series[$0].name, scale: s).width }.max() ?? 0
        let w = 10 + sample + 8 + textW + 10, h = 8 + rowH * entries.count
        let inset = 10
        let corners: [(LegendPosition, Int, Int)] = [
            (.topRight, f.right - inset - w, f.top + inset), (.topLeft, f.left + inset, f.top + inset),
            (.bottomRight, f.right - inset - w, f.bottom - inset - h), (.bottomLeft, f.left + inset, f.bottom - inset - h),
        ]
        var choice = corners[0]
        if legend == .auto {
            // The corner whose box covers the fewest curve pixels (ties keep the order above).
            var best = Int.max
            for c in corners {
                var covered = 0
                for y in Swift.max(0, c.2)..<Swift.min(height, c.2 + h) {
                    for x in Swift.max(0, c.1)..<Swift.min(width, c.1 + w) where mask.pixels[y * width + x] != 0 {
                        covered += 1
                    }
                }
                if covered < best { best = covered; choice = c }
            }
        } else if let c = corners.first(where: { $0.0 == legend }) {
            choice = c
        }
        let (x, y) = (choice.1, choice.2)
        r.fillRect(x: x, y: y, width: w, height: h, .white)
        r.strokeRect(x: x, y: y, width: w, height: h, .darkGray)
        for (row, i) in entries.enumerated() {
            let cy = y + 8 + row * rowH + glyphH / 2
            r.fillRect(x: x + 10, y: cy - lineThickness / 2, width: sample, height: Swift.max(2, lineThickness + 1), color(ofSeries: i))
            r.drawText(series[i].name, x: x + 10 + sample + 8, y: cy - glyphH / 2, scale: s)
        }
    }
}
