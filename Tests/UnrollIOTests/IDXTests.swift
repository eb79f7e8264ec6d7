import Foundation
import Testing
import UnrollCore
import UnrollIO

@Suite struct IDXTests {
    /// The real Fashion-MNIST files (gzip): shapes, sums and a strided sample of values from Python's gzip + NumPy.
    @Test(.needsSharedData) func readsFashionMNIST() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let root = sharedData + "/fashion-mnist/"
        try Python.run("""
            import gzip, json
            out = {}
            for name, offset in [('train-images-idx3-ubyte', 16), ('train-labels-idx1-ubyte', 8),
                                 ('t10k-images-idx3-ubyte', 16), ('t10k-labels-idx1-ubyte', 8)]:
                a = np.frombuffer(gzip.open('\(root)' + name + '.gz').read(), np.uint8, offset=offset)
                out[name] = {'sum': int(a.sum(dtype=np.int64)), 'strided': a[::997].tolist(), 'first': a[:300].tolist(), 'last': int(a[-1])}
            json.dump(out, open('sums.json', 'w'))
            """, in: dir.path)
        let sums = try #require(try Raw.json(dir.file("sums.json")) as? [String: [String: Any]])
        let shapes = ["train-images-idx3-ubyte": [60000, 28, 28], "train-labels-idx1-ubyte": [60000],
                      "t10k-images-idx3-ubyte": [10000, 28, 28], "t10k-labels-idx1-ubyte": [10000]]
        for (name, shape) in shapes {
            let a = try IDX.read(root + name + ".gz")
            #expect(a.shape == shape && a.dtype == "uint8", "\(name)")
            let want = try #require(sums[name])
            let sum = a.tensor.data.reduce(0) { $0 + Int($1) }
            #expect(sum == want["sum"] as! Int, "\(name)")
            #expect(stride(from: 0, to: a.tensor.count, by: 997).map { Int(a.tensor.data[$0]) } == want["strided"] as! [Int], "\(name)")
            #expect(a.tensor.data.prefix(300).map { Int($0) } == want["first"] as! [Int], "\(name)")
            #expect(Int(a.tensor.data.last!) == want["last"] as! Int)
        }
        let labels = try IDX.readLabels(root + "t10k-labels-idx1-ubyte.gz")
        #expect(labels.count == 10000 && Set(labels) == Set(0..<10))
    }

    /// Python writes IDX files of every element type (raw and gzipped); Swift reads the values.
    @Test func readsEveryElementType() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        try Python.run("""
            import gzip, struct, json
            rng = np.random.default_rng(6)
            types = [(0x08, '>u1', 'uint8'), (0x09, '>i1', 'int8'), (0x0B, '>i2', 'int16'), (0x0C, '>i4', 'int32'),
                     (0x0D, '>f4', 'float32'), (0x0E, '>f8', 'float64')]
            manifest = []
            for k, (code, dt, name) in enumerate(types):
                shape = [(4,), (2, 3), (3, 2, 2)][k % 3]
                a = (rng.standard_normal(shape) * 1000).astype(dt) if 'f' in dt else rng.integers(-100 if 'i' in dt else 0, 100, shape).astype(dt)
                b = bytes([0, 0, code, len(shape)]) + b''.join(struct.pack('>I', d) for d in shape) + a.tobytes()
                open(f'x{k}.idx', 'wb').write(b)
                open(f'x{k}-ubyte.gz', 'wb').write(gzip.compress(b))
                a.astype('<f4').tofile(f'x{k}.f32')
                manifest.append([f'x{k}', list(shape), name])
            json.dump(manifest, open('manifest.json', 'w'))
            """, in: dir.path)
        let manifest = try #require(try Raw.json(dir.file("manifest.json")) as? [[Any]])
        #expect(manifest.count == 6)
        for m in manifest {
            let name = m[0] as! String
            for path in [dir.file(name + ".idx"), dir.file(name + "-ubyte.gz")] {
                let a = try IDX.read(path)
                #expect(a.shape == m[1] as! [Int] && a.dtype == m[2] as! String, "\(path)")
                #expect(a.tensor.data == (try Raw.floats(dir.file(name + ".f32"))), "\(path)")
            }
        }
    }

    @Test func swiftWrittenIDXRoundTrips() throws {
        let bytes = IDX.encode(uint8: [1, 2, 3, 250, 251, 252], shape: [2, 3])
        let a = try IDX.decode(bytes)
        #expect(a.shape == [2, 3] && a.tensor.data == [1, 2, 3, 250, 251, 252])
        #expect(try IDX.decode(Zlib.gunzip(Zlib.gzip(bytes))) == a)
    }
}
