import Foundation
import UnrollCore

/// A decoded PNG: `height` rows of `width` pixels with `channels` interleaved samples each
/// (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA), every sample in 0…2^bitDepth−1.
/// Palette images are expanded to RGB (RGBA when they carry transparency) with bitDepth 8.
public struct PNGImage: Equatable, Sendable {
    public var width: Int
    public var height: Int
    public var channels: Int
    public var bitDepth: Int
    public var samples: [UInt16]

    public var maxValue: Int { (1 << bitDepth) - 1 }

    /// Gray levels in [0, 1] as a `[height, width]` tensor: RGB is converted with the ITU-R 601
    /// luma weights (0.299, 0.587, 0.114); alpha is dropped.
    public func gray() -> Tensor {
        let n = width * height
        var out = [Float](repeating: 0, count: n)
        let m = Double(maxValue)
        samples.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBufferPointer { o in
                let c = channels
                if c <= 2 {
                    for i in 0..<n { o[i] = Float(Double(s[i * c]) / m) }
                } else {
                    for i in 0..<n {
                        let luma = 0.299 * Double(s[i * c]) + 0.587 * Double(s[i * c + 1]) + 0.114 * Double(s[i * c + 2])
                        o[i] = Float(luma / m)
                    }
                }
            }
        }
        return Tensor(shape: [height, width], data: out)
    }

    /// The color planes in [0, 1], each `[height, width]`: one for gray, three for RGB; alpha is dropped.
    public func planes() -> [Tensor] {
        let n = width * height, m = Float(maxValue), c = channels
        return (0..<(c <= 2 ? 1 : 3)).map { k in
            Tensor(shape: [height, width], data: (0..<n).map { Float(samples[$0 * c + k]) / m })
        }
    }
}

/// PNG reading (all color types, bit depths 1–16, all five filters, non-interlaced) and writing
/// of 8-bit rasters.
public enum PNG {
    static let signature: [UInt8] = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]

    // MARK: Reading

    public static func read(_ path: String) throws -> PNGImage {
        let bytes = try FileBytes.read(path)
        return try naming(path) { try decode(bytes) }
    }

    /// The image at `path` as gray levels in [0, 1], shape `[height, width]` (see `PNGImage.gray`).
    public static func readGray(_ path: String) throws -> Tensor {
        try read(path).gray()
    }

    /// `limit`: the most bytes the image's pixels may take (a header may declare 50 000²).
    public static func decode(_ bytes: [UInt8], limit: Int = DecodeLimit.bytes) throws -> PNGImage {
        guard bytes.count >= 8, Array(bytes[0..<8]) == signature else {
            throw UnrollIOError(.badMagic, "not a PNG file (bad signature)")
        }
        var r = ByteReader(bytes, offset: 8)
        var header: (width: Int, height: Int, bitDepth: Int, colorType: Int)?
        var palette: [UInt8] = []
        var transparency: [UInt8] = []
        var compressed: [UInt8] = []
        var sawIDAT = false

        chunks: while true {
            let length = Int(try r.be(UInt32.self, "a PNG chunk length"))
            guard length <= Int(Int32.max) else { throw UnrollIOError(.malformed, "PNG chunk length \(length) exceeds 2^31−1") }
            let typeBytes = try r.bytes(4, "a PNG chunk type")
            let type = String(decoding: typeBytes, as: UTF8.self)
            let data = try r.bytes(length, "PNG chunk \(type)")
            let storedCRC = try r.be(UInt32.self, "the CRC of PNG chunk \(type)")
            let crc = Zlib.crc32(data, initial: Zlib.crc32(typeBytes))
            guard crc == storedCRC else {
                throw UnrollIOError(.corrupt, "PNG chunk \(type) has a bad CRC (computed \(hex32(crc)), stored \(hex32(storedCRC)))")
            }
            if header == nil && type != "IHDR" { throw UnrollIOError(.malformed, "PNG does not start with an IHDR chunk") }
            switch type {
            case "IHDR":
                guard header == nil, length == 13 else { throw UnrollIOError(.malformed, "PNG IHDR chunk is malformed") }
                header = try parseHeader(Array(data))
            case "PLTE":
                guard length % 3 == 0, length / 3 >= 1, length / 3 <= 256 else {
                    throw UnrollIOError(.malformed, "PNG palette length \(length) is not 3 × 1…256")
                }
                palette = Array(data)
            case "tRNS":
                transparency = Array(data)
            case "IDAT":
                compressed += data
                sawIDAT = true
            case "IEND":
                break chunks
            default:
                // Bit 5 of the first letter clear (uppercase) marks a chunk a decoder must understand.
                if typeBytes.first! & 0x20 == 0 {
                    throw UnrollIOError(.unsupported, "PNG has an unknown critical chunk '\(type)'")
                }
            }
        }
        guard let h = header else { throw UnrollIOError(.malformed, "PNG has no IHDR chunk") }
        guard sawIDAT else { throw UnrollIOError(.malformed, "PNG has no image data (IDAT)") }
        if h.colorType == 3 && palette.isEmpty { throw UnrollIOError(.malformed, "palette PNG has no PLTE chunk") }

        let channels = [0: 1, 2: 3, 3: 1, 4: 2, 6: 4][h.colorType]!
        let bitsPerPixel = channels * h.bitDepth
        let rowBits = try byteCount(h.width, bitsPerPixel, "PNG row")
        let rowBytes = rowBits / 8 + (rowBits % 8 == 0 ? 0 : 1)
        let total = try byteCount(h.height, rowBytes + 1, "PNG image")
        try DecodeLimit.check(total, "PNG \(h.width)×\(h.height)", limit: limit)
        var raw: [UInt8]
        do {
            raw = try Zlib.inflate(compressed, format: .zlib, sizeHint: total, limit: total)
        } catch let e as UnrollIOError {
            throw UnrollIOError(e.kind, "PNG image data: \(e.detail)")
        }
        guard raw.count == total else {
            throw UnrollIOError(.truncated, "PNG image data holds \(raw.count) bytes, \(h.width)×\(h.height) needs \(total)")
        }
        try unfilter(&raw, height: h.height, rowBytes: rowBytes, bytesPerPixel: max(1, bitsPerPixel / 8))
        let samples = unpack(raw, width: h.width, height: h.height, rowBytes: rowBytes, channels: channels, bitDepth: h.bitDepth)
        if h.colorType == 3 {
            return try expandPalette(samples, width: h.width, height: h.height, palette: palette, transparency: transparency)
        }
        return PNGImage(width: h.width, height: h.height, channels: channels, bitDepth: h.bitDepth, samples: samples)
    }

    static func parseHeader(_ d: [UInt8]) throws -> (width: Int, height: Int, bitDepth: Int, colorType: Int) {
        var r = ByteReader(d)
        let width = Int(try r.be(UInt32.self, "IHDR"))
        let height = Int(try r.be(UInt32.self, "IHDR"))
        let bitDepth = Int(try r.u8("IHDR"))
        let colorType = Int(try r.u8("IHDR"))
        let compression = try r.u8("IHDR"), filter = try r.u8("IHDR"), interlace = try r.u8("IHDR")
        guard width > 0, height > 0, width <= Int(Int32.max), height <= Int(Int32.max) else {
            throw UnrollIOError(.malformed, "PNG size \(width)×\(height) is invalid")
        }
        let allowed: [Int: [Int]] = [0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16]]
        guard let depths = allowed[colorType] else { throw UnrollIOError(.malformed, "PNG color type \(colorType) is invalid") }
        guard depths.contains(bitDepth) else {
            throw UnrollIOError(.malformed, "PNG bit depth \(bitDepth) is invalid for color type \(colorType)")
        }
        guard compression == 0, filter == 0 else { throw UnrollIOError(.malformed, "PNG compression/filter method must be 0") }
        guard interlace == 0 else {
            throw UnrollIOError(.unsupported, interlace == 1 ? "interlaced (Adam7) PNG is not supported; re-save it non-interlaced"
                                                             : "PNG interlace method \(interlace) is invalid")
        }
        return (width, height, bitDepth, colorType)
    }

    /// Undoes the per-row filters in place, leaving the filter-type bytes where they were.
    static func unfilter(_ raw: inout [UInt8], height: Int, rowBytes: Int, bytesPerPixel bpp: Int) throws {
        let stride = rowBytes + 1
        let zeros = [UInt8](repeating: 0, count: rowBytes)  // the row "above" the first row
        var badRow = -1
        zeros.withUnsafeBufferPointer { zero in
            raw.withUnsafeMutableBufferPointer { p in
                for y in 0..<height {
                    let row = p.baseAddress! + y * stride + 1
                    let up = y > 0 ? UnsafePointer(row - stride) : zero.baseAddress!
                    let n = rowBytes, k = min(bpp, rowBytes)
                    switch p[y * stride] {
                    case 0:
                        break
                    case 1:  // Sub
                        for i in k..<n { row[i] &+= row[i - bpp] }
                    case 2:  // Up
                        for i in 0..<n { row[i] &+= up[i] }
                    case 3:  // Average
                        for i in 0..<k { row[i] &+= up[i] >> 1 }
                        for i in k..<n { row[i] &+= UInt8((Int(row[i - bpp]) + Int(up[i])) >> 1) }
                    case 4:  // Paeth
                        for i in 0..<k { row[i] &+= up[i] }  // paeth(0, b, 0) = b
                        for i in k..<n {
                            row[i] &+= UInt8(paeth(Int(row[i - bpp]), Int(up[i]), Int(up[i - bpp])))
                        }
                    default:
                        badRow = y
                        return
                    }
                }
            }
        }
        if badRow >= 0 {
            throw UnrollIOError(.malformed, "PNG row \(badRow) has invalid filter type \(raw[badRow * stride])")
        }
    }

    @inline(__always) static func paeth(_ a: Int, _ b: Int, _ c: Int) -> Int {
        let p = a + b - c
        let pa = abs(p - a), pb = abs(p - b), pc = abs(p - c)
        if pa <= pb && pa <= pc { return a }
        return pb <= pc ? b : c
    }

    /// Unfiltered rows to one sample per element (16-bit samples are big-endian; < 8 bits are packed MSB first).
    static func unpack(_ raw: [UInt8], width: Int, height: Int, rowBytes: Int, channels: Int, bitDepth: Int) -> [UInt16] {
        let perRow = width * channels
        var out = [UInt16](repeating: 0, count: perRow * height)
        raw.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for y in 0..<height {
                    let row = src.baseAddress! + y * (rowBytes + 1) + 1
                    let o = dst.baseAddress! + y * perRow
                    switch bitDepth {
                    case 16:
                        for i in 0..<perRow { o[i] = UInt16(row[2 * i]) << 8 | UInt16(row[2 * i + 1]) }
                    case 8:
                        for i in 0..<perRow { o[i] = UInt16(row[i]) }
                    default:
                        let perByte = 8 / bitDepth, mask = (1 << bitDepth) - 1
                        for i in 0..<perRow {
                            let shift = 8 - bitDepth * (i % perByte + 1)
                            o[i] = UInt16((Int(row[i / perByte]) >> shift) & mask)
                        }
                    }
                }
            }
        }
        return out
    }

    static func expandPalette(_ indices: [UInt16], width: Int, height: Int, palette: [UInt8],
                              transparency: [UInt8]) throws -> PNGImage {
        let entries = palette.count / 3
        let channels = transparency.isEmpty ? 3 : 4
        var out = [UInt16](repeating: 0, count: indices.count * channels)
        for (i, index) in indices.enumerated() {
            let k = Int(index)
            guard k < entries else {
                throw UnrollIOError(.malformed, "PNG pixel uses palette index \(k) but the palette has \(entries) entries")
            }
            for c in 0..<3 { out[i * channels + c] = UInt16(palette[3 * k + c]) }
            if channels == 4 { out[i * 4 + 3] = k < transparency.count ? UInt16(transparency[k]) : 255 }
        }
        return PNGImage(width: width, height: height, channels: channels, bitDepth: 8, samples: out)
    }

    // MARK: Writing

    /// PNG bytes of an 8-bit raster (color type from its channel count), each row filtered with
    /// whichever of the five filters gives the smallest sum of absolute differences.
    public static func encode(_ raster: Raster) -> [UInt8] {
        let colorType: UInt8 = [1: 0, 2: 4, 3: 2, 4: 6][raster.channels]!
        let bpp = raster.channels
        let rowBytes = raster.width * bpp
        var filtered = [UInt8](repeating: 0, count: raster.height * (rowBytes + 1))
        var candidate = [UInt8](repeating: 0, count: rowBytes)
        let zeros = [UInt8](repeating: 0, count: rowBytes)
        raster.pixels.withUnsafeBufferPointer { px in
            zeros.withUnsafeBufferPointer { zero in
                for y in 0..<raster.height {
                    let row = px.baseAddress! + y * rowBytes
                    let up = y > 0 ? row - rowBytes : zero.baseAddress!
                    var bestCost = Int.max
                    for type in 0...4 {
                        var cost = 0
                        for i in 0..<rowBytes {
                            let a = i >= bpp ? Int(row[i - bpp]) : 0
                            let b = Int(up[i])
                            let c = i >= bpp ? Int(up[i - bpp]) : 0
                            let predictor: Int
                            switch type {
                            case 0: predictor = 0
                            case 1: predictor = a
                            case 2: predictor = b
                            case 3: predictor = (a + b) >> 1
                            default: predictor = paeth(a, b, c)
                            }
                            let v = UInt8(truncatingIfNeeded: Int(row[i]) - predictor)
                            candidate[i] = v
                            cost += abs(Int(Int8(bitPattern: v)))
                        }
                        if cost < bestCost {
                            bestCost = cost
                            let start = y * (rowBytes + 1)
                            filtered[start] = UInt8(type)
                            filtered.replaceSubrange((start + 1)..<(start + 1 + rowBytes), with: candidate)
                        }
                    }
                }
            }
        }

        var out = signature
        func chunk(_ type: String, _ data: [UInt8]) {
            let typeBytes = Array(type.utf8)
            out.appendBE(UInt32(data.count))
            out += typeBytes
            out += data
            out.appendBE(Zlib.crc32(data, initial: Zlib.crc32(typeBytes)))
        }
        var ihdr: [UInt8] = []
        ihdr.appendBE(UInt32(raster.width))
        ihdr.appendBE(UInt32(raster.height))
        ihdr += [8, colorType, 0, 0, 0]
        chunk("IHDR", ihdr)
        let stream = Zlib.deflate(filtered, format: .zlib, level: 6)
        // IDAT chunks of at most 1 MiB (any split is valid; readers concatenate them).
        var start = 0
        repeat {
            let end = min(start + (1 << 20), stream.count)
            chunk("IDAT", Array(stream[start..<end]))
            start = end
        } while start < stream.count
        chunk("IEND", [])
        return out
    }

    /// Writes the raster as a PNG, atomically.
    public static func write(_ raster: Raster, to path: String) throws {
        try AtomicFile.write(encode(raster), to: path)
    }
}
