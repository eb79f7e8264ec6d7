import Foundation
import Unroll
import UnrollCore
import UnrollExperiments
import UnrollIO

/// `unroll reproduce vsc-fmnist`: Fashion-MNIST from `$UNROLL_DATA/fashion-mnist` (default: the shared
/// data), the experiment, and per z a PNG of test images above each family's reconstructions.
enum VSCFashionReproduce {
    static func run(scale: ReproductionScale, seed: UInt64, steps: Int?, methods: String?, folder: String,
                    callbacks: ReproductionCallbacks) throws -> ReproductionResult {
        var s = VSCFashionExperiment.settings(scale)
        s.seed = seed
        if let e = steps { s.epochs = e }
        if let methods {
            s.families = try parseChoices(methods, "--methods",
                                          VSCFashionExperiment.paperFamilies.map { (VSCLinearReproduce.name($0), $0) })
        }
        let images = try ExplainData.fashion(SharedData.folder + "/fashion-mnist")
        var byLatents: [Int: [VSCFashionExperiment.Trained]] = [:]
        let test = images.test
        let outcome = try VSCFashionExperiment.run(s, train: images.train, test: test, scale: scale.rawValue,
                                                   callbacks: callbacks) { t in
            byLatents[t.latents, default: []].append(t)
            try PNG.write(panel(test: test, trained: byLatents[t.latents]!), to: "\(folder)/reconstructions_z\(t.latents).png")
        }
        return outcome.result
    }

    /// The first test images (top row), then one row of reconstructions per family.
    static func panel(test: Tensor, trained: [VSCFashionExperiment.Trained]) -> Raster {
        let k = trained.map(\.report.reconstructions.rows).min() ?? 0
        var items: [ImagePanel.Item] = []
        for i in 0..<k { items.append(.init(test.rows(i..<(i + 1)).reshaped([28, 28]), caption: i == 0 ? "test" : "")) }
        for t in trained {
            // Short enough to fit under a 28×3-pixel image, so the columns stay aligned.
            let tag = t.label.replacingOccurrences(of: "Thresh ", with: "th-").replacingOccurrences(of: "Gaussian", with: "gauss")
                .replacingOccurrences(of: "Laplacian", with: "laplace").replacingOccurrences(of: "Spike-and-slab", with: "s&s").lowercased()
            for i in 0..<k {
                items.append(.init(t.report.reconstructions.rows(i..<(i + 1)).reshaped([28, 28]), caption: i == 0 ? tag : ""))
            }
        }
        let z = trained.first?.latents ?? 0
        return ImagePanel(scale: 3, columns: max(k, 1), gap: 6, title: "Fashion-MNIST test images and reconstructions, z = \(z)").render(items)
    }
}
