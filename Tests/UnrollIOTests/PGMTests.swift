import Foundation
import Testing
import UnrollCore
import UnrollIO

@Suite struct PGMTests {
    /// Python writes 8-bit P5, 16-bit P5 (big-endian) and P2 with comments; Swift reads the same
    /// values scaled to [0, 1].
    @Test func readsWhatPythonWrites() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        try Python.run("""
            rng = np.random.default_rng(8)
            a = rng.integers(0, 256, (5, 7))
            open('g8.pgm', 'wb').write(b'P5\\n# a comment\\n7 5\\n255\\n' + a.astype('u1').tobytes())
            b = rng.integers(0, 1001, (3, 4))
            open('g16.pgm', 'wb').write(b'P5 4 3 1000\\n' + b.astype('>u2').tobytes())
            c = rng.integers(0, 16, (2, 3))
            open('ascii.pgm', 'w').write('P2\\n3 2 # size\\n15\\n' + '\\n'.join(' '.join(map(str, r)) for r in c) + '\\n')
            for name, v, m in [('g8', a, 255), ('g16', b, 1000), ('ascii', c, 15)]:
                (v / m).astype('<f4').tofile(name + '.f32')
            """, in: dir.path)
        for (name, shape, maxValue) in [("g8", [5, 7], 255), ("g16", [3, 4], 1000), ("ascii", [2, 3], 15)] {
            let image = try PGM.read(dir.file(name + ".pgm"))
            #expect(image.maxValue == maxValue, "\(name)")
            let gray = image.gray()
            #expect(gray.shape == shape, "\(name)")
            #expect(gray.data == (try Raw.floats(dir.file(name + ".f32"))), "\(name)")
        }
    }

    /// Swift writes an 8-bit P5 from [0, 1] values (clamped, rounded); Python parses it.
    @Test func pythonReadsWhatSwiftWrites() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let t = Tensor(rows: [[0, 0.5, 1, 1.5], [-0.2, 0.25, 0.999, 0.002]])
        try PGM.write(t, to: dir.file("out.pgm"))
        let out = try Python.run("""
            b = open('out.pgm', 'rb').read()
            head, pixels = b[:b.index(b'255\\n') + 4], b[b.index(b'255\\n') + 4:]
            assert head.split() == [b'P5', b'4', b'2', b'255'], head
            assert list(pixels) == [0, 128, 255, 255, 0, 64, 255, 1], list(pixels)
            print('ok')
            """, in: dir.path)
        #expect(out.contains("ok"))
        #expect(try PGM.readGray(dir.file("out.pgm")).shape == [2, 4])
    }
}
