import Foundation
import Testing
import UnrollCore
import UnrollIO

@Suite struct ZlibTests {
    /// Python's zlib/gzip and Swift's wrappers agree both ways in all three framings, and CRC-32 matches.
    @Test func interoperatesWithPython() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        var rng = Random(seed: 2)
        let data = (0..<100_000).map { i in UInt8(i % 7 == 0 ? rng.int(below: 256) : (i / 100) % 256) }
        try Data(data).write(to: URL(fileURLWithPath: dir.file("data.bin")))
        try Data(Zlib.deflate(data, format: .zlib)).write(to: URL(fileURLWithPath: dir.file("swift.zlib")))
        try Data(Zlib.deflate(data, format: .raw)).write(to: URL(fileURLWithPath: dir.file("swift.raw")))
        try Data(Zlib.gzip(data)).write(to: URL(fileURLWithPath: dir.file("swift.gz")))
        let out = try Python.run("""
            import zlib, gzip
            d = open('data.bin', 'rb').read()
            assert zlib.decompress(open('swift.zlib', 'rb').read()) == d
            assert zlib.decompress(open('swift.raw', 'rb').read(), -15) == d
            assert gzip.decompress(open('swift.gz', 'rb').read()) == d
            open('py.zlib', 'wb').write(zlib.compress(d, 9))
            c = zlib.compressobj(6, zlib.DEFLATED, -15); open('py.raw', 'wb').write(c.compress(d) + c.flush())
            open('py2.gz', 'wb').write(gzip.compress(d[:500]) + gzip.compress(d[500:]))  # two members
            print(zlib.crc32(d))
            """, in: dir.path)
        #expect(UInt32(out.trimmingCharacters(in: .whitespacesAndNewlines)) == Zlib.crc32(data))
        func bytes(_ name: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir.file(name)))) }
        #expect(try Zlib.inflate(bytes("py.zlib"), format: .zlib) == data)
        #expect(try Zlib.inflate(bytes("py.raw"), format: .raw) == data)
        #expect(try Zlib.gunzip(bytes("py2.gz")) == data)
        #expect(try FileBytes.readMaybeGzip(dir.file("py2.gz")) == data)
    }

    @Test func corruptTruncatedAndOversizedStreamsThrow() throws {
        let data = [UInt8]((0..<5000).map { UInt8($0 % 251) })
        var z = Zlib.deflate(data, format: .zlib)
        let truncated = #expect(throws: UnrollIOError.self) { try Zlib.inflate(Array(z.prefix(z.count / 2)), format: .zlib) }
        #expect(truncated?.kind == .corrupt && truncated?.description.contains("ends early") == true)
        #expect(throws: UnrollIOError.self) { try Zlib.inflate(data, format: .zlib, limit: 4999) }
        z[0] = 0x00  // bad zlib header
        let corrupt = #expect(throws: UnrollIOError.self) { try Zlib.inflate(z, format: .zlib) }
        #expect(corrupt?.kind == .corrupt)
        var gz = Zlib.gzip(data)
        gz[gz.count - 6] ^= 0xff  // gzip CRC trailer
        #expect(throws: UnrollIOError.self) { try Zlib.gunzip(gz) }
    }
}

@Suite struct AtomicFileTests {
    @Test func replacesWholeFilesAndLeavesNoTemporaries() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = dir.file("out.txt")
        try AtomicFile.write("first version, longer", to: path)
        try AtomicFile.write("second", to: path)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "second")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["out.txt"])
        let error = #expect(throws: UnrollIOError.self) { try AtomicFile.write([1, 2], to: dir.file("missing/x.bin")) }
        #expect(error?.kind == .unwritable && error?.description.contains("does not exist") == true)
    }
}
