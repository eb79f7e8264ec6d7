import Foundation
import Testing
import Unroll
import UnrollCore
import UnrollIO

/// Every reader against mutated files: from a valid file of each format, a few hundred mutants each
/// (flipped bits, overwritten bytes, size fields set to huge or negative values, truncations, cut or
/// repeated spans), seeded so a failure is reproducible. Each reader must return or throw its own
/// error with a one-line message; a trap or a hang fails the suite. Files that once broke a reader
/// stay in `Corpus/` and are read here too.
@Suite struct FuzzTests {
    /// A reader: decodes bytes (from memory or through a file, as the format is read in practice).
    struct Reader: CustomTestStringConvertible, Sendable {
        var name: String
        var seed: @Sendable () -> [UInt8]
        var read: @Sendable ([UInt8]) throws -> Void
        var testDescription: String { name }
    }

    static func tensor(_ shape: [Int]) -> Tensor {
        var rng = Random(seed: 7)
        return Tensor.normal(shape, rng: &rng)
    }

    /// Writes `bytes` to a temporary file named `name`, runs `body` on its path, removes it.
    static func throughFile(_ bytes: [UInt8], name: String, _ body: (String) throws -> Void) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("unroll-fuzz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent(name).path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        try body(path)
    }

    static let readers: [Reader] = [
        Reader(name: "npy", seed: { Npy.encode(tensor([5, 4])) }, read: FormatReaders.named("npy")!),
        Reader(name: "npz stored", seed: { Npz.encode([("X", tensor([4, 3])), ("y", tensor([4]))]) }, read: FormatReaders.named("npz")!),
        Reader(name: "npz deflated", seed: { Npz.encode([("X", tensor([6, 5]))], compressed: true) }, read: FormatReaders.named("npz")!),
        Reader(name: "safetensors", seed: { Safetensors.encode([("a", tensor([3, 4])), ("b", tensor([2]))], metadata: ["k": "v"]) },
               read: FormatReaders.named("safetensors")!),
        Reader(name: "png gray", seed: { var r = Random(seed: 5); return PNG.encode(Raster(gray: Tensor.uniform([9, 11], rng: &r))) }, read: FormatReaders.named("png")!),
        Reader(name: "pgm", seed: { var r = Random(seed: 6); return PGM.encode(Tensor.uniform([6, 7], rng: &r)) }, read: FormatReaders.named("pgm")!),
        Reader(name: "idx", seed: { IDX.encode(uint8: (0..<60).map { UInt8($0) }, shape: [3, 4, 5]) }, read: FormatReaders.named("idx")!),
        Reader(name: "idx gz", seed: { Zlib.gzip(IDX.encode(uint8: (0..<60).map { UInt8($0) }, shape: [3, 4, 5])) },
               read: { bytes in try throughFile(bytes, name: "x-ubyte.gz") { _ = try DataFile.read($0) } }),
        Reader(name: "csv", seed: { Array("a,b,c\n1,2,3\n4.5,-6,7e-3\n".utf8) }, read: FormatReaders.named("csv")!),
        Reader(name: "gzip", seed: { Zlib.gzip(Array(String(repeating: "0.25,-1e-3\n", count: 20).utf8)) }, read: FormatReaders.named("gzip")!),
        Reader(name: "model file", seed: {
                   let model = try! UnrolledAutoencoder(dictionary: DenseDictionary(weights: tensor([4, 6])),
                                                        encoder: UnrolledEncoder(layers: 3, lambda: .scalar(0.1), step: .fixed(0.2)))
                   let c = ModelFile(model: .dense(model), info: ["training.step": "3"]).contents()
                   return Safetensors.encode(c.tensors, metadata: c.metadata)
               },
               read: FormatReaders.named("model")!),
    ]

    /// Every reader the libFuzzer harness drives is also mutated here.
    @Test func everyFormatReaderIsFuzzedHere() {
        let here = Set(Self.readers.map { String($0.name.split(separator: " ")[0]) })
        for (name, _) in FormatReaders.all { #expect(here.contains(name), "\(name) has no mutation test") }
    }

    /// The `k`-th mutant of `seed` (deterministic).
    static func mutant(_ seed: [UInt8], _ k: Int) -> [UInt8] {
        var rng = Random(seed: UInt64(k) &* 0x9E37_79B9 &+ 1)
        var b = seed
        func position() -> Int { b.isEmpty ? 0 : Int(rng.uniform(0, Double(b.count))) % max(b.count, 1) }
        let edits = 1 + k % 4
        for _ in 0..<edits where !b.isEmpty {
            switch Int(rng.uniform(0, 7)) {
            case 0:   // flip a bit
                let i = position()
                b[i] ^= UInt8(1) << UInt8(Int(rng.uniform(0, 8)) % 8)
            case 1:   // overwrite a byte
                b[position()] = [0x00, 0xFF, 0x7F, 0x80, UInt8(Int(rng.uniform(0, 256)) % 256)][Int(rng.uniform(0, 5)) % 5]
            case 2:   // a 4- or 8-byte field set to a huge, negative or zero value (little-endian)
                let width = rng.uniform(0, 1) < 0.5 ? 4 : 8
                let value: UInt64 = [UInt64.max, 0x7FFF_FFFF, 0x8000_0000, 0, 0xFFFF_FFFF, 1 << 40][Int(rng.uniform(0, 6)) % 6]
                let i = position()
                for j in 0..<width where i + j < b.count { b[i + j] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(j))) }
            case 3:   // truncate
                b = Array(b.prefix(position()))
            case 4:   // cut a span
                let i = position(), n = min(b.count - i, 1 + Int(rng.uniform(0, 16)))
                b.removeSubrange(i..<(i + n))
            case 5:   // repeat a span
                let i = position(), n = min(b.count - i, 1 + Int(rng.uniform(0, 32)))
                b.insert(contentsOf: b[i..<(i + n)], at: i)
            default:  // an ASCII digit or bracket where text is (headers, CSV)
                b[position()] = Array("9[{(-.e\"".utf8)[Int(rng.uniform(0, 8)) % 8]
            }
        }
        return b
    }

    @Test(arguments: readers)
    func mutantsGiveAResultOrOneLineError(_ reader: Reader) throws {
        let seed = reader.seed()
        try reader.read(seed)   // the seed itself is valid
        var rejected = 0
        for k in 0..<400 {
            do {
                try reader.read(Self.mutant(seed, k))
            } catch let e as UnrollIOError {
                rejected += 1
                #expect(!e.description.contains("\n"), "\(reader.name) mutant \(k): \(e.description)")
            } catch let e as UnrollError {
                rejected += 1
                #expect(!e.description.contains("\n"), "\(reader.name) mutant \(k): \(e.description)")
            }
        }
        // Most mutants are caught (a few only change values, which is not an error).
        #expect(rejected > 100, "\(reader.name): only \(rejected) of 400 mutants were rejected")
    }

    /// Files that once crashed, hung or were silently accepted (`Corpus/<format>-<what>.bin`).
    @Test func theCorpusGivesOneLineErrors() throws {
        let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Corpus")
        let names = try FileManager.default.contentsOfDirectory(atPath: corpus.path).filter { $0.hasSuffix(".bin") }.sorted()
        #expect(!names.isEmpty)
        for name in names {
            let bytes = [UInt8](try Data(contentsOf: corpus.appendingPathComponent(name)))
            let format = String(name.split(separator: "-")[0])
            guard let reader = Self.readers.first(where: { $0.name.hasPrefix(format) }) else {
                Issue.record("\(name): no reader for \(format)")
                continue
            }
            let error = #expect(throws: (any Error).self, "\(name) was accepted") { try reader.read(bytes) }
            #expect(error.map { "\($0)".contains("\n") } == false, "\(name): \(String(describing: error))")
        }
    }
}
