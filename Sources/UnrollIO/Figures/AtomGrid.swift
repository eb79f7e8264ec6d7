import UnrollCore

/// The classic dictionary picture: each atom (a row of length h·w) reshaped to an h×w tile, tiles in
/// a grid with 1-pixel separators (and a 1-pixel border). Each tile is contrast-stretched
/// symmetrically around 0: gray 128 is 0, 255 is the tile's largest |value|, 1 its negative.
public struct AtomGrid: Sendable {
    public var atomHeight: Int
    public var atomWidth: Int
    /// Tiles per row; nil = ⌈√p⌉.
    public var columns: Int?
    /// Nearest-neighbour upscaling of every atom pixel (separators stay 1 pixel).
    public var scale: Int
    /// Gray level of the separators, the border and unused grid cells.
    public var separatorGray: UInt8

    public init(atomHeight: Int, atomWidth: Int, columns: Int? = nil, scale: Int = 1, separatorGray: UInt8 = 255) {
        precondition(atomHeight >= 1 && atomWidth >= 1 && scale >= 1 && (columns ?? 1) >= 1,
                     "atom grid needs positive atom size, scale and columns")
        self.atomHeight = atomHeight
        self.atomWidth = atomWidth
        self.columns = columns
        self.scale = scale
        self.separatorGray = separatorGray
    }

    /// Tiles per row and rows of tiles for `count` atoms.
    public func layout(count: Int) -> (columns: Int, rows: Int) {
        let c = Swift.max(1, columns ?? Int(Double(Swift.max(count, 1)).squareRoot().rounded(.up)))
        return (c, Swift.max(1, (count + c - 1) / c))
    }

    /// Top-left pixel of tile `index`'s image area.
    public func tileOrigin(_ index: Int, count: Int) -> (x: Int, y: Int) {
        let c = layout(count: count).columns
        return (1 + (index % c) * (atomWidth * scale + 1), 1 + (index / c) * (atomHeight * scale + 1))
    }

    /// A gray raster of the atoms, the rows of `atoms` (`[p, h·w]`, or `[p, h, w]`).
    public func render(_ atoms: Tensor) -> Raster {
        let (h, w) = (atomHeight, atomWidth)
        precondition(atoms.cols == h * w, "atom grid of \(h)×\(w) tiles needs rows of \(h * w) values, got \(atoms.shape)")
        let p = atoms.count == 0 ? 0 : atoms.rows
        let (c, r) = layout(count: p)
        var raster = Raster(width: 1 + c * (w * scale + 1), height: 1 + r * (h * scale + 1),
                            channels: 1, fill: separatorGray)
        for k in 0..<p {
            let values = atoms.data[(k * h * w)..<((k + 1) * h * w)]
            let peak = values.reduce(Float(0)) { Swift.max($0, $1.isFinite ? abs($1) : 0) }
            let (ox, oy) = tileOrigin(k, count: p)
            for i in 0..<h {
                for j in 0..<w {
                    let v = values[values.startIndex + i * w + j]
                    let gray: UInt8 = peak > 0 && v.isFinite
                        ? UInt8(Swift.max(1, Swift.min(255, (128 + 127 * v / peak).rounded()))) : 128
                    for dy in 0..<scale {
                        let row = (oy + i * scale + dy) * raster.width + ox + j * scale
                        for dx in 0..<scale { raster.pixels[row + dx] = gray }
                    }
                }
            }
        }
        return raster
    }
}
