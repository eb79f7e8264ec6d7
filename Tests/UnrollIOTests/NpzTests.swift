import Foundation
import Testing
import UnrollCore
import UnrollIO

@Suite struct NpzTests {
    /// np.savez (stored, zip64 local headers), np.savez_compressed (deflated), a zip with data
    /// descriptors (written to an unseekable stream) and one with zip64 central-directory fields
    /// and a zip64 end record: Swift reads every entry, in order, with NumPy's values.
    @Test func readsWhatNumpyWrites() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        try Python.run("""
            import io, json, struct, zipfile
            rng = np.random.default_rng(3)
            arrays = {
                'weights': rng.standard_normal((5, 7)).astype('<f4'),
                'codes': np.asfortranarray(rng.standard_normal((4, 3, 2))),
                'labels': rng.integers(0, 10, 13),
                'mask': rng.integers(0, 2, (3, 3)).astype(bool),
                'pixels': rng.integers(0, 256, (6, 6)).astype(np.uint8),
                'scalar': np.float64(2.5),
                'empty': np.zeros((0, 4), np.float32),
            }
            np.savez('stored.npz', rng.standard_normal(3).astype('<f4'), **arrays)
            np.savez_compressed('deflated.npz', **arrays)

            class Unseekable(io.RawIOBase):
                def __init__(self, f): self.f = f
                def writable(self): return True
                def write(self, b): return self.f.write(b)
                def seekable(self): return False
                def tell(self): raise io.UnsupportedOperation
            with open('descriptors.npz', 'wb') as f:
                z = zipfile.ZipFile(Unseekable(f), 'w', compression=zipfile.ZIP_DEFLATED)
                for k, v in arrays.items():
                    with z.open(k + '.npy', 'w', force_zip64=True) as g:
                        np.lib.format.write_array(g, v)
                z.close()
            assert struct.unpack('<H', open('descriptors.npz', 'rb').read()[6:8])[0] & 8  # data descriptor flag

            # Rewrite a stored archive's central directory with every size/offset in zip64 extra fields.
            src = open('stored.npz', 'rb').read()
            zin = zipfile.ZipFile('stored.npz')
            cd_start = struct.unpack('<I', src[-6:-2])[0]
            body = src[:cd_start]
            cd = b''
            for i in zin.infolist():
                name = i.filename.encode()
                extra = struct.pack('<HHQQQ', 1, 24, i.file_size, i.compress_size, i.header_offset)
                cd += struct.pack('<IHHHHHHIIIHHHHHII', 0x02014b50, 45, 45, 0, 0, 0, 0x21, i.CRC,
                                  0xFFFFFFFF, 0xFFFFFFFF, len(name), len(extra), 0, 0, 0, 0, 0xFFFFFFFF) + name + extra
            n = len(zin.infolist())
            z64 = struct.pack('<IQHHIIQQQQ', 0x06064b50, 44, 45, 45, 0, 0, n, n, len(cd), len(body))
            loc = struct.pack('<IIQI', 0x07064b50, 0, len(body) + len(cd), 1)
            eocd = struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
            open('zip64.npz', 'wb').write(body + cd + z64 + loc + eocd)

            expected = {}
            for f in ['stored', 'deflated', 'descriptors', 'zip64']:
                with np.load(f + '.npz') as d:  # NumPy itself must accept every test archive
                    expected[f] = [[k, list(d[k].shape), d[k].dtype.name] for k in d.files]
                    for k in d.files:
                        d[k].astype('<f4').tofile(f'{f}-{k}.f32')
            json.dump(expected, open('expected.json', 'w'))
            """, in: dir.path)
        let expected = try #require(try Raw.json(dir.file("expected.json")) as? [String: [[Any]]])
        for file in ["stored", "deflated", "descriptors", "zip64"] {
            let arrays = try Npz.read(dir.file(file + ".npz"))
            let want = try #require(expected[file])
            #expect(arrays.map(\.name) == want.map { $0[0] as! String }, "\(file)")
            #expect(arrays.count >= 7)
            for (entry, w) in zip(arrays, want) {
                #expect(entry.array.shape == w[1] as! [Int], "\(file)/\(entry.name)")
                #expect(entry.array.dtype == w[2] as! String, "\(file)/\(entry.name)")
                #expect(sameFloats(entry.array.tensor.data, try Raw.floats(dir.file("\(file)-\(entry.name).f32"))),
                        "\(file)/\(entry.name)")
            }
        }
        #expect(try Npz.read(dir.file("stored.npz")).last?.name == "arr_0")  // NumPy puts positional arrays last
    }

    /// Swift writes stored and deflated archives (with int64 labels mixed in); NumPy reads them back.
    @Test func numpyReadsWhatSwiftWrites() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        var rng = Random(seed: 11)
        let w = Tensor.normal([8, 16], rng: &rng)
        let z = Tensor.normal([3, 8], rng: &rng).softThreshold(0.8)
        try Npz.write([("W", w), ("Z", z)], to: dir.file("plain.npz"))
        try Npz.write(npy: [("W", Npy.encode(w)), ("labels", Npy.encode(int64: [4, 2, 0])), ("Z", Npy.encode(z))],
                      to: dir.file("packed.npz"), compressed: true)
        try Raw.write(w.data, to: dir.file("W.f32"))
        try Raw.write(z.data, to: dir.file("Z.f32"))
        let out = try Python.run("""
            import zipfile
            W = np.fromfile('W.f32', '<f4').reshape(8, 16)
            Z = np.fromfile('Z.f32', '<f4').reshape(3, 8)
            for name, method in [('plain.npz', zipfile.ZIP_STORED), ('packed.npz', zipfile.ZIP_DEFLATED)]:
                zf = zipfile.ZipFile(name)
                assert zf.testzip() is None  # every CRC checks
                assert all(i.compress_type == method for i in zf.infolist()), name
                d = np.load(name)
                assert d['W'].dtype == np.float32 and np.array_equal(d['W'], W), name
                assert np.array_equal(d['Z'], Z), name
            d = np.load('packed.npz')
            assert d.files == ['W', 'labels', 'Z'], d.files
            assert d['labels'].dtype == np.int64 and d['labels'].tolist() == [4, 2, 0]
            print('ok')
            """, in: dir.path)
        #expect(out.contains("ok"))
        // And Swift reads its own output back.
        let back = try Npz.read(dir.file("packed.npz"))
        #expect(back.map(\.name) == ["W", "labels", "Z"])
        #expect(back[0].array.tensor == w && back[2].array.tensor == z)
        #expect(back[1].array.dtype == "int64" && back[1].array.tensor.data == [4, 2, 0])
    }
}
