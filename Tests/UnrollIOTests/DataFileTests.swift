import Foundation
import Testing
import UnrollCore
import UnrollIO

@Suite struct DataFileTests {
    /// `DataFile.load` dispatches on the extension (and on the magic bytes for unknown ones) and
    /// returns names, shapes, dtypes and values as the format-specific readers do.
    @Test func loadsEveryFormat() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let t = Tensor(rows: [[0, 0.5, 1], [0.25, 0.75, 0]])
        try Npy.write(t, to: dir.file("a.npy"))
        try AtomicFile.write(Zlib.gzip(Npy.encode(t)), to: dir.file("b.npy.gz"))
        try AtomicFile.write(Npy.encode(t), to: dir.file("weights.bin"))
        try Npz.write([("W", t), ("Z", t.transposed())], to: dir.file("c.npz"), compressed: true)
        try Safetensors.write([("W", t)], metadata: ["k": "v"], to: dir.file("d.safetensors"))
        try PNG.write(Raster(gray: t), to: dir.file("e.png"))
        try PNG.write(Raster(width: 3, height: 2, channels: 3, fill: 51), to: dir.file("rgb.png"))
        try PGM.write(t, to: dir.file("f.pgm"))
        try AtomicFile.write(Zlib.gzip(IDX.encode(uint8: [1, 2, 3, 4, 5, 6], shape: [2, 3])), to: dir.file("g-idx3-ubyte.gz"))
        try CSV.write(header: ["x", "y", "z"], rows: [[1, 2, 3], [4, 5, 6]], to: dir.file("h.csv"))

        func check(_ file: String, _ expected: [(String, [Int], String)]) throws {
            let arrays = try DataFile.load(dir.file(file))
            #expect(arrays.map(\.name) == expected.map(\.0), "\(file)")
            #expect(arrays.map(\.tensor.shape) == expected.map(\.1), "\(file)")
            #expect(arrays.map(\.dtype) == expected.map(\.2), "\(file)")
        }
        try check("a.npy", [("a", [2, 3], "float32")])
        try check("b.npy.gz", [("b", [2, 3], "float32")])
        try check("weights.bin", [("weights", [2, 3], "float32")])
        try check("c.npz", [("W", [2, 3], "float32"), ("Z", [3, 2], "float32")])
        try check("d.safetensors", [("W", [2, 3], "float32")])
        try check("e.png", [("e", [2, 3], "uint8")])
        try check("rgb.png", [("rgb", [2, 3, 3], "uint8")])
        try check("f.pgm", [("f", [2, 3], "uint8")])
        try check("g-idx3-ubyte.gz", [("g-idx3-ubyte", [2, 3], "uint8")])
        try check("h.csv", [("h", [2, 3], "csv")])
        #expect(try DataFile.load(dir.file("e.png"))[0].tensor.data == t.data.map { Float(Double(($0 * 255).rounded()) / 255) })
        #expect(try DataFile.load(dir.file("rgb.png"))[0].tensor.data == [Float](repeating: 0.2, count: 18))
        #expect(try DataFile.load(dir.file("g-idx3-ubyte.gz"))[0].tensor.data == [1, 2, 3, 4, 5, 6])
        #expect(try DataFile.read(dir.file("d.safetensors")).metadata == ["k": "v"])
    }

    @Test func missingUnknownAndDirectoryPathsAreOneLineErrors() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        try AtomicFile.write("just some text", to: dir.file("notes.txt"))
        let cases: [(String, UnrollIOError.Kind, String)] = [
            (dir.file("nope.npy"), .notFound, "no such file"),
            (dir.file("notes.txt"), .unsupported, "unknown file type"),
            (dir.path + "/", .unreadable, "is a directory"),
        ]
        for (path, kind, text) in cases {
            let error = #expect(throws: UnrollIOError.self) { try DataFile.load(path) }
            #expect(error?.kind == kind, "\(path)")
            #expect(error?.description.hasPrefix(path) == true && error?.description.contains(text) == true, "\(String(describing: error))")
            #expect(error?.description.contains("\n") == false)
        }
    }
}
