import Foundation
import Testing
import UnrollCore
import UnrollIO

/// The PNG writer and a small unfiltering decoder in plain Python (zlib + struct), the reference
/// for these tests (no PIL here).
private let pythonPNG = """
    import json, struct, zlib
    SIG = b'\\x89PNG\\r\\n\\x1a\\n'
    def chunk(t, d):
        return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
    def paeth(a, b, c):
        pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
        return a if pa <= pb and pa <= pc else (b if pb <= pc else c)
    def predict(t, a, b, c):
        return [0, a, b, (a + b) // 2, paeth(a, b, c)][t]
    def filter_rows(rows, bpp, types):
        out, prev = b'', bytes(len(rows[0]))
        for row, t in zip(rows, types):
            f = bytes((row[i] - predict(t, row[i - bpp] if i >= bpp else 0, prev[i], prev[i - bpp] if i >= bpp else 0)) & 255
                      for i in range(len(row)))
            out, prev = out + bytes([t]) + f, row
        return out
    def decode(path):
        b = open(path, 'rb').read()
        assert b[:8] == SIG
        pos, idat, used = 8, b'', set()
        while True:
            (n,) = struct.unpack('>I', b[pos:pos + 4])
            t, d = b[pos + 4:pos + 8], b[pos + 8:pos + 8 + n]
            assert struct.unpack('>I', b[pos + 8 + n:pos + 12 + n])[0] == zlib.crc32(t + d) & 0xffffffff, t
            pos += 12 + n
            if t == b'IHDR':
                w, h, bd, ct, _, _, il = struct.unpack('>IIBBBBB', d)
                assert bd == 8 and il == 0
            elif t == b'IDAT':
                idat += d
            elif t == b'IEND':
                break
        raw = zlib.decompress(idat)
        ch = {0: 1, 2: 3, 4: 2, 6: 4}[ct]
        stride = w * ch
        assert len(raw) == h * (stride + 1)
        out, prev = bytearray(), bytearray(stride)
        for y in range(h):
            t = raw[y * (stride + 1)]
            used.add(t)
            row = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
            for i in range(stride):
                row[i] = (row[i] + predict(t, row[i - ch] if i >= ch else 0, prev[i], prev[i - ch] if i >= ch else 0)) & 255
            out += row
            prev = row
        return w, h, ch, bytes(out), used

    """

@Suite struct PNGTests {
    /// Python builds PNGs by hand for every color type and bit depth (gray 1/2/4/8/16, RGB 8/16,
    /// palette 1/2/4/8 with and without tRNS, gray+alpha 8/16, RGBA 8/16), odd widths, every row
    /// filter type, IDAT split over several chunks (one empty) and an ancillary chunk; Swift must
    /// decode the same samples, and `gray()` the same luma.
    @Test func decodesEveryColorTypeBitDepthAndFilter() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        try Python.run(pythonPNG + """
            rng = np.random.default_rng(4)
            cases = [(0, 1), (0, 2), (0, 4), (0, 8), (0, 16), (2, 8), (2, 16), (3, 1), (3, 2), (3, 4), (3, 8),
                     (4, 8), (4, 16), (6, 8), (6, 16)]
            manifest = []
            for k, (ct, bd) in enumerate(cases + [(3, 8)]):
                trns = k == len(cases)
                ch = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[ct]
                w, h = [13, 1, 7, 16][k % 4], 11
                palette_size = min(1 << bd, 200) if ct == 3 else 0
                values = rng.integers(0, palette_size if ct == 3 else 1 << bd, (h, w * ch))
                rows = []
                for r in values:
                    if bd == 16:
                        rows.append(r.astype('>u2').tobytes())
                    elif bd == 8:
                        rows.append(r.astype('u1').tobytes())
                    else:
                        per = 8 // bd
                        padded = np.concatenate([r, np.zeros(-len(r) % per, int)]).reshape(-1, per)
                        rows.append(bytes(int(sum(int(v) << (8 - bd * (j + 1)) for j, v in enumerate(g))) for g in padded))
                bpp = max(1, ch * bd // 8)
                types = [y % 5 for y in range(h)]
                rng.shuffle(types)
                stream = zlib.compress(filter_rows(rows, bpp, types))
                cuts = sorted(rng.integers(0, len(stream), 2))
                png = SIG + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, bd, ct, 0, 0, 0))
                png += chunk(b'tEXt', b'Comment\\x00made by hand')
                if ct == 3:
                    pal = rng.integers(0, 256, (palette_size, 3)).astype('u1')
                    png += chunk(b'PLTE', pal.tobytes())
                    if trns:
                        alpha = rng.integers(0, 256, palette_size // 2).astype('u1')
                        png += chunk(b'tRNS', alpha.tobytes())
                for part in [stream[:cuts[0]], b'', stream[cuts[0]:cuts[1]], stream[cuts[1]:]]:
                    png += chunk(b'IDAT', part)
                png += chunk(b'IEND', b'')
                name = f'p{k}'
                open(name + '.png', 'wb').write(png)
                samples = values
                out_bd, out_ch = bd, ch
                if ct == 3:
                    rgb = pal[values]  # h × w × 3
                    if trns:
                        a = np.full(palette_size, 255, 'u1'); a[:len(alpha)] = alpha
                        rgb = np.concatenate([rgb, a[values][..., None]], axis=2)
                    samples, out_bd, out_ch = rgb.reshape(h, -1), 8, rgb.shape[2]
                samples.astype('<u2').tofile(name + '.u16')
                s = samples.reshape(h, w, out_ch).astype(np.float64)
                m = float((1 << out_bd) - 1)
                gray = (0.299 * s[..., 0] + 0.587 * s[..., 1] + 0.114 * s[..., 2]) / m if out_ch >= 3 else s[..., 0] / m
                gray.astype('<f4').tofile(name + '.gray')
                manifest.append({'name': name, 'width': w, 'height': h, 'channels': out_ch, 'bitDepth': out_bd, 'filters': sorted(set(types))})
            json.dump(manifest, open('manifest.json', 'w'))
            """, in: dir.path)
        let manifest = try #require(try Raw.json(dir.file("manifest.json")) as? [[String: Any]])
        #expect(manifest.count == 16)
        for m in manifest {
            let name = m["name"] as! String
            let image = try PNG.read(dir.file(name + ".png"))
            #expect(image.width == m["width"] as! Int && image.height == m["height"] as! Int, "\(name)")
            #expect(image.channels == m["channels"] as! Int && image.bitDepth == m["bitDepth"] as! Int, "\(name)")
            #expect(image.samples == (try Raw.uint16s(dir.file(name + ".u16"))), "\(name) samples")
            #expect(image.gray().data == (try Raw.floats(dir.file(name + ".gray"))), "\(name) gray")
            #expect((m["filters"] as! [Int]).count == min(5, image.height), "\(name) should use every filter")
        }
    }

    /// Swift encodes 1–4 channel rasters (noise and smooth gradients, so the adaptive filter picks
    /// several types); the Python decoder must get the same pixels back.
    @Test func pythonDecodesWhatSwiftEncodes() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        var rng = Random(seed: 21)
        for channels in 1...4 {
            for (k, (w, h)) in [(37, 23), (1, 5), (64, 64)].enumerated() {
                var r = Raster(width: w, height: h, channels: channels)
                for y in 0..<h { for x in 0..<w { for c in 0..<channels {
                    let smooth = (x * 3 + y * 5 + c * 40) % 256
                    r.pixels[(y * w + x) * channels + c] = k == 0 ? UInt8(rng.int(below: 256)) : UInt8(smooth)
                } } }
                try PNG.write(r, to: dir.file("s\(channels)_\(k).png"))
                try Data(r.pixels).write(to: URL(fileURLWithPath: dir.file("s\(channels)_\(k).raw")))
                #expect(try PNG.read(dir.file("s\(channels)_\(k).png")).samples == r.pixels.map(UInt16.init))
            }
        }
        let out = try Python.run(pythonPNG + """
            import glob
            used_all = set()
            for path in sorted(glob.glob('s*.png')):
                w, h, ch, pixels, used = decode(path)
                assert ch == int(path[1]), path
                assert pixels == open(path[:-4] + '.raw', 'rb').read(), path
                used_all |= used
            assert len(used_all) >= 3, used_all
            print('ok', sorted(used_all))
            """, in: dir.path)
        #expect(out.contains("ok"))
    }

    /// The project's real images: dimensions match the IHDR as Python parses it; two small ones
    /// are compared pixel for pixel with the Python decoder; `readGray` is pixels / 255.
    @Test(.needsSharedData) func decodesTheRealImages() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let out = try Python.run(pythonPNG + """
            import glob
            root = '\(sharedData)'
            sizes = {}
            for path in sorted(glob.glob(root + '/images/*/*.png')):
                b = open(path, 'rb').read()
                w, h, bd, ct = struct.unpack('>IIBB', b[16:26])
                sizes[path] = [w, h, bd, ct]
            for name in ['coins', 'chelsea']:
                w, h, ch, pixels, used = decode(f'{root}/images/train/{name}.png')
                open(name + '.raw', 'wb').write(pixels)
            json.dump(sizes, open('sizes.json', 'w'))
            print(len(sizes))
            """, in: dir.path)
        let sizes = try #require(try Raw.json(dir.file("sizes.json")) as? [String: [Int]])
        #expect(sizes.count == 18, "\(out)")
        for (path, s) in sizes {
            let image = try PNG.read(path)
            #expect([image.width, image.height, image.bitDepth] == Array(s[0..<3]), "\(path)")
            #expect(image.samples.count == s[0] * s[1] * image.channels)
        }
        for name in ["coins", "chelsea"] {
            let path = sharedData + "/images/train/\(name).png"
            let pixels = [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir.file(name + ".raw"))))
            #expect(try PNG.read(path).samples == pixels.map(UInt16.init), "\(name)")
            let gray = try PNG.readGray(path)
            #expect(gray.data == pixels.map { Float(Double($0) / 255) })
        }
    }

    @Test func interlacedImagesAreAClearError() throws {
        var png: [UInt8] = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]
        appendChunk(&png, "IHDR", [0, 0, 0, 4, 0, 0, 0, 4, 8, 0, 0, 0, 1])
        appendChunk(&png, "IDAT", Zlib.deflate([UInt8](repeating: 0, count: 40), format: .zlib))
        appendChunk(&png, "IEND", [])
        let error = #expect(throws: UnrollIOError.self) { try PNG.decode(png) }
        #expect(error?.kind == .unsupported && error?.description.contains("interlaced") == true)
    }
}

/// Appends a PNG chunk with its CRC (for hand-made test files).
func appendChunk(_ png: inout [UInt8], _ type: String, _ data: [UInt8]) {
    let t = Array(type.utf8)
    for k in (0..<4).reversed() { png.append(UInt8(truncatingIfNeeded: data.count >> (8 * k))) }
    png += t + data
    let crc = Zlib.crc32(t + data)
    for k in (0..<4).reversed() { png.append(UInt8(truncatingIfNeeded: crc >> (8 * k))) }
}
