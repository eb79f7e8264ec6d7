import Foundation
import Testing
import UnrollCore
import UnrollIO

@Suite struct NpyTests {
    /// NumPy writes every supported dtype (both byte orders), C and Fortran order, versions 1/2/3,
    /// 0-d, 1-D, empty and 3-D arrays; Swift must read the same values bit for bit.
    @Test func readsWhatNumpyWrites() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        try Python.run("""
            import json
            from numpy.lib import format as fmt
            rng = np.random.default_rng(1)
            def values(dt, shape):
                dt = np.dtype(dt)
                if dt.kind == 'b':
                    return rng.integers(0, 2, size=shape).astype(dt)
                if dt.kind in 'iu':
                    info = np.iinfo(dt)
                    a = rng.integers(max(info.min, -2**40), min(info.max, 2**40), size=shape, endpoint=True).astype(dt)
                    if a.size >= 2:
                        a.flat[0], a.flat[1] = info.min, info.max
                    return a
                a = (rng.standard_normal(size=shape) * 10).astype(dt)
                if a.size >= 6:  # specials, and values that are subnormal in float16
                    a.flat[0], a.flat[1], a.flat[2], a.flat[3], a.flat[4], a.flat[5] = np.nan, np.inf, -np.inf, -0.0, 1e-6, -3e-8
                return a
            dtypes = ['<f4', '<f8', '<i4', '<i8', '|u1', '<u1', '|b1', '|i1', '<i2', '<u2', '<u4', '<u8', '<f2',
                      '>f4', '>f8', '>i4', '>i8', '>u2']
            shapes = [(3, 4), (2, 3, 5), (), (7,), (0, 3), (4, 1, 2, 3)]
            manifest = []
            for k, dt in enumerate(dtypes):
                for s, shape in enumerate(shapes):
                    for order in 'CF':
                        a = values(dt, shape)
                        if a.ndim > 0:  # (asfortranarray would turn a 0-d array into shape (1,))
                            a = np.asfortranarray(a) if order == 'F' else np.ascontiguousarray(a)
                        assert a.shape == shape
                        version = [(1, 0), (2, 0), (3, 0)][(k + s) % 3]
                        name = f'a{k}_{s}_{order}'
                        with open(name + '.npy', 'wb') as f:
                            fmt.write_array(f, a, version=version)
                        a.astype('<f4').tofile(name + '.f32')  # tofile writes C order
                        manifest.append({'name': name, 'shape': list(shape), 'dtype': np.dtype(dt).name,
                                         'fortran': bool(a.flags.f_contiguous and not a.flags.c_contiguous)})
            json.dump(manifest, open('manifest.json', 'w'))
            """, in: dir.path)
        let manifest = try #require(try Raw.json(dir.file("manifest.json")) as? [[String: Any]])
        #expect(manifest.count == 18 * 6 * 2)
        #expect(manifest.contains { $0["fortran"] as? Bool == true })
        for entry in manifest {
            let name = entry["name"] as! String
            let array = try Npy.read(dir.file(name + ".npy"))
            #expect(array.shape == (entry["shape"] as! [Int]), "\(name)")
            #expect(array.dtype == entry["dtype"] as! String, "\(name)")
            #expect(sameFloats(array.tensor.data, try Raw.floats(dir.file(name + ".f32"))), "\(name) values differ")
        }
    }

    /// Swift's `.npy` output is byte-identical to `np.save` and NumPy reads back the same values,
    /// for float tensors, int64 labels and uint8 arrays.
    @Test func numpyReadsWhatSwiftWrites() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        var rng = Random(seed: 7)
        let shapes: [[Int]] = [[], [5], [3, 4], [2, 3, 4], [0, 3], [1000, 17]]
        var manifest: [[String: Any]] = []
        for (k, shape) in shapes.enumerated() {
            var t = Tensor.normal(shape, rng: &rng)
            if t.count >= 3 { t.data[0] = .nan; t.data[1] = -.infinity; t.data[2] = -0.0 }
            try Npy.write(t, to: dir.file("t\(k).npy"))
            try Raw.write(t.data, to: dir.file("t\(k).f32"))
            manifest.append(["name": "t\(k)", "shape": shape])
        }
        let labels = [3, -1, 0, 9, 1 << 40]
        try AtomicFile.write(Npy.encode(int64: labels), to: dir.file("labels.npy"))
        try AtomicFile.write(Npy.encode(uint8: [0, 1, 255, 7, 8, 9], shape: [2, 3]), to: dir.file("bytes.npy"))
        try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: dir.file("manifest.json")))
        let out = try Python.run("""
            import json, io
            for m in json.load(open('manifest.json')):
                ours = open(m['name'] + '.npy', 'rb').read()
                expected = np.fromfile(m['name'] + '.f32', dtype='<f4').reshape(m['shape'])
                a = np.load(m['name'] + '.npy')
                assert a.dtype == np.float32 and a.shape == tuple(m['shape']), (m, a.dtype, a.shape)
                assert a.tobytes() == expected.tobytes(), m
                buf = io.BytesIO(); np.save(buf, expected)
                assert buf.getvalue() == ours, (m['name'], buf.getvalue()[:128], ours[:128])
                assert len(ours) % 64 == (expected.nbytes % 64)  # data starts 64-aligned
            l = np.load('labels.npy')
            assert l.dtype == np.int64 and l.tolist() == [3, -1, 0, 9, 1 << 40], l
            b = np.load('bytes.npy')
            assert b.dtype == np.uint8 and b.tolist() == [[0, 1, 255], [7, 8, 9]], b
            print('ok')
            """, in: dir.path)
        #expect(out.contains("ok"))
    }

    /// The real face crops shipped with the project (float64 [200, 25, 25]).
    @Test(.needsSharedData) func readsTheLfwSubset() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = sharedData + "/faces/lfw_subset.npy"
        try Python.run("np.load('\(path)').astype('<f4').tofile('lfw.f32')", in: dir.path)
        let a = try Npy.read(path)
        #expect(a.shape == [200, 25, 25] && a.dtype == "float64")
        #expect(sameFloats(a.tensor.data, try Raw.floats(dir.file("lfw.f32"))))
    }

    /// Fortran order is reordered to row-major (checked against an explicit index formula).
    @Test func fortranOrderBecomesRowMajor() throws {
        // Hand-built v1 header with fortran_order True, shape (2, 3, 4), values 0..<24 in file order.
        var header = "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3, 4), }"
        header += String(repeating: " ", count: 64 - (10 + header.utf8.count + 1) % 64) + "\n"
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count), 0] + Array(header.utf8)
        for v in 0..<24 { withUnsafeBytes(of: Float(v).bitPattern.littleEndian) { bytes += $0 } }
        let a = try Npy.decode(bytes)
        for i in 0..<2 { for j in 0..<3 { for k in 0..<4 {
            // Fortran offset of (i, j, k) is i + 2 j + 6 k.
            #expect(a.tensor.data[(i * 3 + j) * 4 + k] == Float(i + 2 * j + 6 * k))
        } } }
    }

    @Test func structuredAndComplexDtypesAreClearErrors() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        try Python.run("""
            np.save('rec.npy', np.zeros(3, dtype=[('a', '<f4'), ('b', '<i4')]))
            np.save('complex.npy', np.zeros(3, dtype='<c8'))
            np.save('text.npy', np.array(['ab', 'cd']))
            """, in: dir.path)
        for name in ["rec", "complex", "text"] {
            let path = dir.file(name + ".npy")
            let error = #expect(throws: UnrollIOError.self) { try Npy.read(path) }
            #expect(error?.kind == .unsupported, "\(name): \(String(describing: error))")
            #expect(error?.description.hasPrefix(path) == true)
        }
    }
}
