import UnrollCore

/// `unroll bench kernels`: the convolution and sparse-product kernels at the sizes the papers use,
/// each against its in-house alternative (im2col vs direct loops; sparse vs dense GEMM). No external peer:
/// PyTorch comparisons of whole models are separate cases.
enum KernelBenchmarks {
    static let `case` = BenchmarkCase(
        name: "kernels",
        summary: "convolutions (im2col vs direct loops) and sparse×dense products (vs dense GEMM) at paper sizes",
        run: { try run($0) })

    /// Median milliseconds of `repeats` runs after one warm-up.
    static func ms(_ repeats: Int, _ body: () -> Void) -> Double {
        body()
        return Stopwatch.median((0..<repeats).map { _ in Stopwatch.seconds(body) }) * 1e3
    }

    static func run(_ o: BenchOptions) throws -> BenchReport {
        var report = BenchReport(benchmark: "kernels", threads: o.threads, repeats: o.repeats)
        var rng = Random(seed: 0)
        let layers: [(String, ConvGeometry, Int)] = [
            ("conv2d 1→64 7×7 s5 128² ×16", ConvGeometry(inChannels: 1, outChannels: 64, inputHeight: 128, inputWidth: 128,
                                                       kernelHeight: 7, kernelWidth: 7, stride: 5), 16),
            ("conv2d 1→64 7×7 s1 128² ×16", ConvGeometry(inChannels: 1, outChannels: 64, inputHeight: 128, inputWidth: 128,
                                                       kernelHeight: 7, kernelWidth: 7, stride: 1), 16),
            ("conv1d 1→3 K45 N5000 ×64", .oneD(inChannels: 1, outChannels: 3, length: 5000, kernel: 45), 64),
            ("conv1d 1→16 K45 N5000 ×64", .oneD(inChannels: 1, outChannels: 16, length: 5000, kernel: 45), 64),
        ]
        for (name, g, b) in layers {
            let x = Tensor.normal([b] + g.inputShape, rng: &rng).data
            let w = Tensor.normal(g.filterShape, rng: &rng).data
            var y = [Float](repeating: 0, count: b * g.outputCount)
            var back = [Float](repeating: 0, count: b * g.inputCount)
            var gw = [Float](repeating: 0, count: g.filterCount)
            var ws = ConvWorkspace()
            let direct = g.inputHeight == 1
            func time(_ m: ConvolutionMethod) -> (Double, Double, Double) {
                (ms(o.repeats) { Convolution.forward(g, batch: b, input: x, filters: w, output: &y, workspace: &ws, method: m) },
                 ms(o.repeats) { Convolution.transposed(g, batch: b, input: y, filters: w, output: &back, workspace: &ws, method: m) },
                 ms(o.repeats) { Convolution.filterGradient(g, batch: b, input: x, outputGradient: y, filterGradient: &gw, workspace: &ws, method: m) })
            }
            let im = time(.im2col), dl = direct ? time(.direct) : nil
            for (k, part) in ["forward", "transposed", "filter gradient"].enumerated() {
                let a = [im.0, im.1, im.2][k], d = dl.map { [$0.0, $0.1, $0.2][k] }
                report.rows.append(BenchRow(name: "\(name) \(part)", unit: "ms", ours: a, oursLabel: "im2col",
                                            peer: d, peerLabel: d == nil ? nil : "direct",
                                            ratio: d.map { $0 / a }, ratioLabel: d == nil ? nil : "direct/im2col"))
            }
        }
        // Codes Z [256, 1024] at a few densities, dictionary W [1024, 256], residual R [256, 256].
        let w = Tensor.normal([1024, 256], rng: &rng), r = Tensor.normal([256, 256], rng: &rng)
        for d in [0.01, 0.05, 0.2] {
            var z = Tensor(zeros: [256, 1024])
            for i in 0..<z.count where rng.uniform() < d { z.data[i] = Float(rng.normal()) }
            var out = Tensor(zeros: [])
            let dense = ms(o.repeats) { out = z.matmul(w) }, sparse = ms(o.repeats) { z.sparseMatmul(w, into: &out) }
            let denseT = ms(o.repeats) { out = z.matmul(r, transposeSelf: true) }
            let sparseT = ms(o.repeats) { z.sparseTransposedMatmul(r, into: &out) }
            let pct = "\(Int(d * 100)) %"
            report.rows.append(BenchRow(name: "Z·W, Z 256×1024 at \(pct)", unit: "ms", ours: sparse, oursLabel: "sparse",
                                        peer: dense, peerLabel: "dense GEMM", ratio: dense / sparse, ratioLabel: "dense/sparse"))
            report.rows.append(BenchRow(name: "ZᵀR, Z 256×1024 at \(pct)", unit: "ms", ours: sparseT, oursLabel: "sparse",
                                        peer: denseT, peerLabel: "dense GEMM", ratio: denseT / sparseT, ratioLabel: "dense/sparse"))
        }
        return report
    }
}
