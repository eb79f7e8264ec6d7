/// An 8-bit RGB colour for figures (gray rasters take the channel mean).
public struct Color: Equatable, Sendable {
    public var r: UInt8
    public var g: UInt8
    public var b: UInt8

    public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) {
        self.r = r
        self.g = g
        self.b = b
    }

    public init(gray: UInt8) { self.init(gray, gray, gray) }

    public static let black = Color(0, 0, 0)
    public static let white = Color(255, 255, 255)
    public static let lightGray = Color(225, 225, 225)
    public static let darkGray = Color(90, 90, 90)

    /// Distinct line colours (Okabe–Ito, readable for colour-blind viewers), used in order.
    public static let palette: [Color] = [
        Color(0, 114, 178), Color(213, 94, 0), Color(0, 158, 115), Color(204, 121, 167),
        Color(230, 159, 0), Color(86, 180, 233), Color(0, 0, 0), Color(120, 94, 240),
    ]
}

/// Drawing primitives for figures. Everything clips to the raster; coordinates are pixels from the
/// top-left, x to the right, y down.
extension Raster {
    /// The colour at (x, y) (gray rasters give r = g = b; alpha is ignored).
    public func color(x: Int, y: Int) -> Color {
        let i = (y * width + x) * channels
        if channels < 3 { return Color(gray: pixels[i]) }
        return Color(pixels[i], pixels[i + 1], pixels[i + 2])
    }

    public mutating func set(x: Int, y: Int, _ c: Color) {
        guard x >= 0 && x < width && y >= 0 && y < height else { return }
        let i = (y * width + x) * channels
        switch channels {
        case 1: pixels[i] = UInt8((Int(c.r) + Int(c.g) + Int(c.b)) / 3)
        case 2: pixels[i] = UInt8((Int(c.r) + Int(c.g) + Int(c.b)) / 3); pixels[i + 1] = 255
        default:
            pixels[i] = c.r
            pixels[i + 1] = c.g
            pixels[i + 2] = c.b
            if channels == 4 { pixels[i + 3] = 255 }
        }
    }

    /// Fills the rectangle with top-left (x, y), clipped.
    public mutating func fillRect(x: Int, y: Int, width w: Int, height h: Int, _ c: Color) {
        let x0 = Swift.max(0, x), y0 = Swift.max(0, y)
        let x1 = Swift.min(width, x + w), y1 = Swift.min(height, y + h)
        if x0 >= x1 || y0 >= y1 { return }
        for yy in y0..<y1 { for xx in x0..<x1 { set(x: xx, y: yy, c) } }
    }

    /// One-pixel outline of the rectangle.
    public mutating func strokeRect(x: Int, y: Int, width w: Int, height h: Int, _ c: Color) {
        fillRect(x: x, y: y, width: w, height: 1, c)
        fillRect(x: x, y: y + h - 1, width: w, height: 1, c)
        fillRect(x: x, y: y, width: 1, height: h, c)
        fillRect(x: x + w - 1, y: y, width: 1, height: h, c)
    }

    /// A straight line from (x0, y0) to (x1, y1) (Bresenham), `thickness` pixels wide (a square pen).
    public mutating func drawLine(x0: Int, y0: Int, x1: Int, y1: Int, _ c: Color, thickness: Int = 1) {
        var (x, y) = (x0, y0)
        let dx = abs(x1 - x0), dy = -abs(y1 - y0)
        let sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1
        var err = dx + dy
        let lo = -(thickness - 1) / 2, hi = thickness / 2
        while true {
            for oy in lo...hi { for ox in lo...hi { set(x: x + ox, y: y + oy, c) } }
            if x == x1 && y == y1 { break }
            let e2 = 2 * err
            if e2 >= dy { err += dy; x += sx }
            if e2 <= dx { err += dx; y += sy }
        }
    }

    /// Draws `text` with its top-left at (x, y), each font pixel a `scale`×`scale` block.
    public mutating func drawText(_ text: String, x: Int, y: Int, scale: Int = 1, _ c: Color = .black) {
        var cx = x
        for ch in text {
            for gx in 0..<BitmapFont.glyphWidth {
                for gy in 0..<BitmapFont.glyphHeight where BitmapFont.isSet(ch, x: gx, y: gy) {
                    fillRect(x: cx + gx * scale, y: y + gy * scale, width: scale, height: scale, c)
                }
            }
            cx += BitmapFont.advance * scale
        }
    }

    /// Draws `text` rotated 90° counter-clockwise (reading bottom to top), with the rotated box's
    /// top-left at (x, y): the box is glyph height wide and text width tall.
    public mutating func drawTextVertical(_ text: String, x: Int, y: Int, scale: Int = 1, _ c: Color = .black) {
        let length = BitmapFont.size(of: text, scale: scale).width
        var along = 0
        for ch in text {
            for gx in 0..<BitmapFont.glyphWidth {
                for gy in 0..<BitmapFont.glyphHeight where BitmapFont.isSet(ch, x: gx, y: gy) {
                    // Glyph column → upward, glyph row → rightward.
                    fillRect(x: x + gy * scale, y: y + length - (along + (gx + 1) * scale),
                             width: scale, height: scale, c)
                }
            }
            along += BitmapFont.advance * scale
        }
    }

    /// Draws `text` horizontally centred on `centerX`, top at `y`.
    public mutating func drawTextCentered(_ text: String, centerX: Int, y: Int, scale: Int = 1, _ c: Color = .black) {
        drawText(text, x: centerX - BitmapFont.size(of: text, scale: scale).width / 2, y: y, scale: scale, c)
    }
}
