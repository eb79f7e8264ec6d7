import UnrollCore

/// An 8-bit image in memory: `height` rows of `width` pixels, `channels` interleaved
/// samples per pixel (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA), row-major from the top-left.
/// Figures are drawn into a `Raster` and written with `PNG.write`.
public struct Raster: Equatable, Sendable {
    public let width: Int
    public let height: Int
    public let channels: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int = 1, fill: UInt8 = 0) {
        precondition(width >= 0 && height >= 0 && (1...4).contains(channels), "bad raster \(width)×\(height)×\(channels)")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = [UInt8](repeating: fill, count: width * height * channels)
    }

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * channels, "raster needs \(width * height * channels) samples")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// A gray raster from a `[height, width]` tensor, mapping `lo...hi` to 0...255 (clamped).
    public init(gray t: Tensor, lo: Float = 0, hi: Float = 1) {
        self.init(planes: [t], lo: lo, hi: hi)
    }

    /// A gray (one plane) or RGB (three) raster from `[height, width]` planes, mapping `lo...hi` to
    /// 0...255 (clamped).
    public init(planes: [Tensor], lo: Float = 0, hi: Float = 1) {
        precondition(planes.count == 1 || planes.count == 3, "a raster takes 1 or 3 planes, got \(planes.count)")
        precondition(planes.allSatisfy { $0.rank == 2 && $0.shape == planes[0].shape }, "planes must be [height, width] of one size")
        let scale = hi > lo ? 255 / (hi - lo) : 0, c = planes.count, n = planes[0].count
        var pixels = [UInt8](repeating: 0, count: n * c)
        for (k, p) in planes.enumerated() {
            for i in 0..<n { pixels[i * c + k] = UInt8(Swift.max(0, Swift.min(255, ((p.data[i] - lo) * scale).rounded()))) }
        }
        self.init(width: planes[0].shape[1], height: planes[0].shape[0], channels: c, pixels: pixels)
    }
}
