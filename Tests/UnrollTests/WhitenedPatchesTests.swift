import Foundation
import Testing
import Unroll
import UnrollCore

@Suite struct WhitenedPatchesTests {
    /// A plane wave is an eigenfunction of any circular filter: whitening scales it by R(f).
    @Test func whiteningScalesAPlaneWaveByTheFilterResponse() {
        let (h, w, a, b) = (12, 20, 3, 5)
        var data = [Float](repeating: 0, count: h * w)
        for i in 0..<h {
            for j in 0..<w {
                data[i * w + j] = Float(cos(2 * Double.pi * (Double(a * i) / Double(h) + Double(b * j) / Double(w)) + 0.3))
            }
        }
        let image = Tensor(shape: [h, w], data: data)
        let f = ((Double(a) / Double(h)) * (Double(a) / Double(h)) + (Double(b) / Double(w)) * (Double(b) / Double(w))).squareRoot()
        let gain = Float(Whitening.response(f))
        #expect(gain > 0.1 && gain < 0.5)
        let out = Whitening.whiten(image)
        for k in 0..<(h * w) { #expect(abs(out.data[k] - gain * data[k]) < 1e-4) }
        // The mean is removed (R(0) = 0) and the highest frequencies are damped.
        let constant = Whitening.whiten(Tensor(shape: [h, w], data: [Float](repeating: 3, count: h * w)))
        #expect(constant.data.allSatisfy { abs($0) < 1e-4 })
        #expect(Whitening.response(0.5) < Whitening.response(0.3))
    }

    @Test func patchesAreZScoredPerPixelAndReproducible() throws {
        var rng = Random(seed: 1)
        let images = [Tensor.uniform([40, 50], rng: &rng), Tensor.uniform([30, 30], rng: &rng)]
        var r1 = Random(seed: 7), r2 = Random(seed: 7), r3 = Random(seed: 8)
        let p = try WhitenedPatches(images: images, side: 8, train: 500, validation: 50, rng: &r1)
        let q = try WhitenedPatches(images: images, side: 8, train: 500, validation: 50, rng: &r2)
        let other = try WhitenedPatches(images: images, side: 8, train: 500, validation: 50, rng: &r3)
        #expect(p.train.shape == [500, 64] && p.validation.shape == [50, 64])
        #expect(p.train == q.train && p.validation == q.validation)
        #expect(p.train != other.train)
        for k in 0..<64 {
            let column = (0..<500).map { Double(p.train.data[$0 * 64 + k]) }
            let mean = column.reduce(0, +) / 500
            let variance = column.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 500
            #expect(abs(mean) < 1e-4)
            #expect(abs(variance - 1) < 1e-3)
        }
    }

    @Test func badImagesAndCountsAreRejected() {
        var rng = Random(seed: 0)
        #expect(throws: UnrollError.self) { try WhitenedPatches(images: [Tensor(zeros: [10, 10])], side: 16, train: 10, validation: 2, rng: &rng) }
        #expect(throws: UnrollError.self) { try WhitenedPatches(images: [], train: 10, validation: 2, rng: &rng) }
        #expect(throws: UnrollError.self) { try WhitenedPatches(images: [Tensor(zeros: [20, 20])], side: 4, train: 0, validation: 2, rng: &rng) }
        var nan = Tensor(zeros: [20, 20]); nan.data[5] = .nan
        #expect(throws: UnrollError.self) { try WhitenedPatches(images: [nan], side: 4, train: 10, validation: 2, rng: &rng) }
    }
}

@Suite struct CodeStatisticsTests {
    @Test func multiInformationMatchesClosedForms() {
        // Two copies of a fair coin: 1 + 1 − 1 = 1 bit. Independent coins: 0 bits.
        let copies = Tensor(rows: [[-1.5, -1.5], [1.5, 1.5], [-1.5, -1.5], [1.5, 1.5]])
        #expect(abs(CodeStatistics.multiInformation(copies) - 1) < 1e-12)
        let independent = Tensor(rows: [[-1.5, -1.5], [-1.5, 1.5], [1.5, -1.5], [1.5, 1.5]])
        #expect(abs(CodeStatistics.multiInformation(independent)) < 1e-12)
        // Exact zeros are their own symbol: 0 and a tiny positive value differ.
        let zeros = Tensor(rows: [[0, 0, 0], [1e-30, 1e-30, 0], [0, 0, 0], [1e-30, 1e-30, 0]])
        #expect(abs(CodeStatistics.multiInformation(zeros) - 1) < 1e-12)
        // Three copies of a uniform 4-symbol variable: 3·2 − 2 = 4 bits.
        let three = Tensor(rows: [[-1.9, -1.9, -1.9], [-0.5, -0.5, -0.5], [0.5, 0.5, 0.5], [1.9, 1.9, 1.9]])
        #expect(abs(CodeStatistics.multiInformation(three) - 4) < 1e-12)
        #expect(CodeStatistics.symbolEdges().count == 22)
    }

    @Test func collapseSparsityAndObjectiveMatchHandCounts() {
        // Column 0 small on 19 of 20 rows (95 %): collapsed; column 1 small on 18: not.
        var values = Tensor(zeros: [20, 2])
        values[0, 0] = 1
        values[0, 1] = 1; values[1, 1] = -1
        values[2, 1] = 0.005
        #expect(CodeStatistics.collapsedFraction(values) == 0.5)
        #expect(abs(CodeStatistics.nonZeroFraction(values) - 4.0 / 40) < 1e-12)
        let x = Tensor(rows: [[1, 2], [0, 1]]), w = Tensor(rows: [[1, 0], [0, 2]]), z = Tensor(rows: [[1, 1], [0, -1]])
        // Residuals (0, 0) and (0, 3): ½(0 + 9) + 2·(2 + 1) = 10.5 over 2 rows.
        #expect(abs(CodeStatistics.sparseCodingObjective(signals: x, codes: z, dictionary: w, lambda: 2) - 5.25) < 1e-9)
    }
}
