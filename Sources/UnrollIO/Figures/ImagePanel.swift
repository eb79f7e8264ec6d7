import UnrollCore

/// Gray images side by side on a white background, each with a caption centred under it
/// (denoising results, interpretability figures). Images are `[h, w]` tensors with values in [0, 1]
/// (clamped; NaN draws as 0); they may differ in size. Rows wrap after `columns` images.
public struct ImagePanel: Sendable {
    public struct Item: Sendable {
        public var image: Tensor
        public var caption: String

        public init(_ image: Tensor, caption: String = "") {
            self.image = image
            self.caption = caption
        }
    }

    /// Nearest-neighbour upscaling of the images.
    public var scale: Int
    /// Images per row; nil = all in one row.
    public var columns: Int?
    /// Space between and around images, in pixels.
    public var gap: Int
    /// Font scale of the captions (1 = 5×7 pixel glyphs).
    public var textScale: Int
    /// Optional title above the panel.
    public var title: String

    public init(scale: Int = 1, columns: Int? = nil, gap: Int = 8, textScale: Int = 1, title: String = "") {
        precondition(scale >= 1 && gap >= 0 && textScale >= 1 && (columns ?? 1) >= 1, "bad image panel options")
        self.scale = scale
        self.columns = columns
        self.gap = gap
        self.textScale = textScale
        self.title = title
    }

    /// Top-left pixel of each item's image in the rendered raster.
    public func origins(_ items: [Item]) -> [(x: Int, y: Int)] { layout(items).origins }

    public func render(_ items: [Item]) -> Raster {
        for item in items {
            precondition(item.image.rank == 2, "image panel needs [h, w] images, got \(item.image.shape)")
        }
        let (origins, width, height) = layout(items)
        var raster = Raster(width: width, height: height, channels: 1, fill: 255)
        if !title.isEmpty { raster.drawTextCentered(title, centerX: width / 2, y: gap, scale: textScale) }
        let captionGap = 3 * textScale
        for (item, o) in zip(items, origins) {
            let (h, w) = (item.image.shape[0], item.image.shape[1])
            for i in 0..<h {
                for j in 0..<w {
                    let v = item.image.data[i * w + j]
                    let g = UInt8(v.isNaN ? 0 : Swift.max(0, Swift.min(255, (v * 255).rounded())))
                    raster.fillRect(x: o.x + j * scale, y: o.y + i * scale, width: scale, height: scale, Color(gray: g))
                }
            }
            if !item.caption.isEmpty {
                raster.drawTextCentered(item.caption, centerX: o.x + w * scale / 2, y: o.y + h * scale + captionGap,
                                        scale: textScale)
            }
        }
        return raster
    }

    private func layout(_ items: [Item]) -> (origins: [(x: Int, y: Int)], width: Int, height: Int) {
        let perRow = Swift.max(1, columns ?? Swift.max(1, items.count))
        let captionHeight = items.contains { !$0.caption.isEmpty } ? BitmapFont.glyphHeight * textScale + 6 * textScale : 0
        let titleHeight = title.isEmpty ? 0 : BitmapFont.glyphHeight * textScale + gap
        var origins: [(x: Int, y: Int)] = []
        var y = gap + titleHeight, width = gap
        var start = 0
        while start < items.count {
            let row = items[start..<Swift.min(items.count, start + perRow)]
            var x = gap, rowHeight = 0
            for item in row {
                let w = item.image.shape.count == 2 ? item.image.shape[1] * scale : 0
                let h = item.image.shape.count == 2 ? item.image.shape[0] * scale : 0
                let captionWidth = BitmapFont.size(of: item.caption, scale: textScale).width
                let cell = Swift.max(w, captionWidth)
                origins.append((x + (cell - w) / 2, y))
                x += cell + gap
                rowHeight = Swift.max(rowHeight, h)
            }
            width = Swift.max(width, x)
            y += rowHeight + captionHeight + gap
            start += perRow
        }
        let titleWidth = BitmapFont.size(of: title, scale: textScale).width + 2 * gap
        return (origins, Swift.max(width, titleWidth, 1), Swift.max(y, 1))
    }
}
