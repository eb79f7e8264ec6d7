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
        precondition(t.rank == 2, "gray raster needs a [height, width] tensor, got \(t.shape)")
        let scale = hi > lo ? 255 / (hi - lo) : 0
        self.init(width: t.shape[1], height: t.shape[0], channels: 1,
                  pixels: t.data.map { UInt8(Swift.max(0, Swift.min(255, (($0 - lo) * scale).rounded()))) })
    }
}
