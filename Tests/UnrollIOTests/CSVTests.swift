import Foundation
import Testing
import UnrollCore
import UnrollIO

@Suite struct CSVTests {
    /// A CSVLog's numbers read back exactly in Python (Double rows as float64, Float rows as float32),
    /// and every row is on disk as soon as it is appended, before the log is closed.
    @Test func logRowsRoundTripExactlyAndReachTheDiskAtOnce() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = dir.file("log.csv")
        let doubles: [[Double]] = [[1, 0.1, 1.0 / 3], [1e-5, -2.5e300, .pi], [-0.0, .infinity, .nan], [123456789012, .leastNonzeroMagnitude, 1e15]]
        let floats: [[Float]] = [[0.1, 1.0 / 3, 3e-38], [16_777_216, -1e-7, 0.3]]
        let log = try CSVLog(path: path, columns: ["epoch", "loss, total", "time \"s\""])
        for row in doubles { try log.append(row) }
        try log.append(fields: ["text", "with,comma", "x"])
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.hasPrefix("epoch,\"loss, total\",\"time \"\"s\"\"\"\n1,0.1,0.3333333333333333\n"))
        #expect(text.hasSuffix("text,\"with,comma\",x\n"))
        for row in floats { try log.append(row) }
        try Raw.write(doubles.flatMap { $0 }, to: dir.file("doubles.f64"))
        try Raw.write(floats.flatMap { $0 }, to: dir.file("floats.f32"))
        let out = try Python.run("""
            import csv
            rows = list(csv.reader(open('log.csv')))
            assert rows[0] == ['epoch', 'loss, total', 'time "s"'], rows[0]
            d = np.fromfile('doubles.f64', '<f8').reshape(4, 3)
            got = np.array([[float(x) for x in r] for r in rows[1:5]])
            assert np.array_equal(got, d, equal_nan=True) and np.signbit(got[2, 0]), (got, d)
            assert rows[5] == ['text', 'with,comma', 'x']
            f = np.fromfile('floats.f32', '<f4').reshape(2, 3)
            got = np.array([[np.float32(x) for x in r] for r in rows[6:8]])
            assert np.array_equal(got, f), (got, f)
            print('ok', rows[6])
            """, in: dir.path)
        #expect(out.contains("ok ['0.1', '0.33333334', '3e-38']"))
        #expect(throws: UnrollIOError.self) { try log.append([1, 2]) }  // wrong field count
    }

    @Test func appendContinuesAMatchingLogAndRejectsAnotherHeader() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = dir.file("log.csv")
        try CSVLog(path: path, columns: ["a", "b"]).append([1, 2])
        try CSVLog(path: path, columns: ["a", "b"], append: true).append([3, 4])
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "a,b\n1,2\n3,4\n")
        #expect(throws: UnrollIOError.self) { try CSVLog(path: path, columns: ["a", "c"], append: true) }
        let (header, table) = try CSV.readNumeric(path)
        #expect(header == ["a", "b"] && table == Tensor(rows: [[1, 2], [3, 4]]))
    }

    /// scikit-learn's digits (gzip CSV): compared with Python's gzip + numpy.loadtxt.
    @Test(.needsSharedData) func loadsTheDigits() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = sharedData + "/digits/digits.csv.gz"
        try Python.run("""
            import gzip
            t = np.loadtxt(gzip.open('\(path)', 'rt'), delimiter=',')
            t[:, :64].astype('<f4').tofile('x.f32')
            t[:, 64].astype('<f4').tofile('labels.f32')
            """, in: dir.path)
        let (x, labels) = try CSV.loadDigits(path)
        #expect(x.shape == [1797, 64])
        #expect(x.data == (try Raw.floats(dir.file("x.f32"))))
        #expect(labels.map(Float.init) == (try Raw.floats(dir.file("labels.f32"))))
        #expect(x.max() == 16 && Set(labels) == Set(0..<10))
    }

    @Test func raggedOrNonNumericRowsAreErrors() throws {
        let ragged = #expect(throws: UnrollIOError.self) { try CSV.decodeNumeric(Array("1,2\n3\n".utf8)) }
        #expect(ragged?.description.contains("line 2 has 1 fields, expected 2") == true)
        let text = #expect(throws: UnrollIOError.self) { try CSV.decodeNumeric(Array("a,b\n1,x\n".utf8)) }
        #expect(text?.description.contains("'x' is not a number") == true)
    }
}
