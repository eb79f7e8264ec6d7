import Foundation
import Testing
import Unroll
import UnrollCore
import UnrollIO

/// A float32 `.npy` mapped into memory gives the rows `Npy.read` gives; other files are not mapped;
/// training from the mapping equals training from the tensor, bit for bit.
@Suite struct MappedRowsTests {
    @Test func mappedRowsEqualTheReadOnes() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        var rng = Random(seed: 3)
        let x = Tensor.normal([37, 11], rng: &rng)
        try Npy.write(x, to: dir.file("x.npy"))
        let mapped = try #require(try Npy.mapRows(dir.file("x.npy")))
        #expect(mapped.shape == [37, 11])
        #expect(mapped.gatherRows([5, 0, 36, 5]) == x.gatherRows([5, 0, 36, 5]))
        #expect(mapped.rows(3..<9) == x.rows(3..<9))
        #expect(!mapped.hasNonFinite)
        // A stack [n, h, w] maps as rows of h·w values, as the CLI reads it.
        let stack = Tensor.normal([4, 3, 5], rng: &rng)
        try Npy.write(stack, to: dir.file("s.npy"))
        let rows = try #require(try Npy.mapRows(dir.file("s.npy")))
        #expect(rows.shape == [4, 15] && rows.rows(0..<4).data == stack.data)
        // NaN is found.
        var bad = x
        bad.data[200] = .nan
        try Npy.write(bad, to: dir.file("bad.npy"))
        #expect(try Npy.mapRows(dir.file("bad.npy"))?.hasNonFinite == true)
    }

    @Test func otherFilesAreNotMapped() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let x = Tensor(rows: [[1, 2], [3, 4]])
        try Data(Npy.encode(int64: [1, 2, 3, 4], shape: [2, 2])).write(to: URL(fileURLWithPath: dir.file("i.npy")))
        #expect(try Npy.mapRows(dir.file("i.npy")) == nil)   // not float32
        var lying = Npy.encode(x)
        lying.removeLast(4)
        try Data(lying).write(to: URL(fileURLWithPath: dir.file("short.npy")))
        #expect(try Npy.mapRows(dir.file("short.npy")) == nil)   // read() then names the problem
        try Data(Array("not numpy".utf8)).write(to: URL(fileURLWithPath: dir.file("junk.npy")))
        #expect(try Npy.mapRows(dir.file("junk.npy")) == nil)
        #expect(try Npy.mapRows(dir.file("absent.npy")) == nil)
    }

    @Test func trainingFromTheMappingEqualsTrainingFromTheTensor() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        var rng = Random(seed: 8)
        let x = Tensor.normal([60, 12], rng: &rng)
        try Npy.write(x, to: dir.file("x.npy"))
        let mapped = try #require(try Npy.mapRows(dir.file("x.npy")))
        let config = TrainerConfig(encoder: UnrolledEncoder(layers: 10, lambda: .scalar(0.1), step: .fixed(0.2)),
                                   mode: .leastSquares, optimizer: .adam(learningRate: 1e-2), batchSize: 16, seed: 2)
        let initial = DenseDictionary.random(atoms: 9, signalSize: 12, seed: 4)
        var a = try DictionaryTrainer(dictionary: initial, data: x, config: config)
        var b = try DictionaryTrainer(dictionary: initial, data: mapped, config: config)
        try a.train(toStep: 20)
        try b.train(toStep: 20)
        #expect(a.dictionary.weights == b.dictionary.weights)
    }
}
