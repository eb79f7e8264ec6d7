import Foundation
import Unroll
import UnrollCore
import UnrollExperiments
import UnrollIO

/// `unroll reproduce vsc-linear`: patches from `$UNROLL_IMAGES/train` (default: images/train of the
/// shared data), the experiment, and per family an atoms grid and a patches-vs-reconstructions panel.
enum VSCLinearReproduce {
    static func run(scale: ReproductionScale, seed: UInt64, steps: Int?, methods: String?, folder: String,
                    callbacks: ReproductionCallbacks) throws -> ReproductionResult {
        let root = ProcessInfo.processInfo.environment["UNROLL_IMAGES"] ?? SharedData.folder + "/images"
        var s = VSCLinearExperiment.settings(scale)
        s.seed = seed
        if let e = steps { s.epochs = e }
        if let methods {
            s.families = try parseChoices(methods, "--methods",
                                          VSCLinearExperiment.paperFamilies.map { (Self.name($0), $0) })
        }
        let images = try ImageFolder.load(root + "/train", option: "vsc-linear images ($UNROLL_IMAGES/train)").map(\.image)
        let outcome = try VSCLinearExperiment.run(s, images: images, scale: scale.rawValue, callbacks: callbacks)
        for t in outcome.trained {
            let stem = Self.name(t.label)
            try PNG.write(AtomGrid(atomHeight: s.side, atomWidth: s.side, scale: 3).render(t.dictionary),
                          to: "\(folder)/atoms_\(stem).png")
            try PNG.write(reconstructionPanel(t, side: s.side), to: "\(folder)/reconstructions_\(stem).png")
        }
        return outcome.result
    }

    /// The CLI name of a family setting: `thresholded-laplacian`, `thresholded-laplacian-gamma`, …
    static func name(_ v: VariationalConfig) -> String {
        name(v.label)
    }

    static func name(_ label: String) -> String {
        label.lowercased().replacingOccurrences(of: "thresh ", with: "thresholded-")
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: " ", with: "-")
    }

    /// Each validation patch beside its reconstruction, both mapped to gray with the patch's own
    /// symmetric range (0.5 is zero), so the pair is directly comparable.
    static func reconstructionPanel(_ t: VSCLinearExperiment.Trained, side: Int) -> Raster {
        var items: [ImagePanel.Item] = []
        for i in 0..<t.examples.rows {
            let x = t.examples.rows(i..<(i + 1)), r = t.reconstructions.rows(i..<(i + 1))
            let range = max(x.data.map(abs).max() ?? 1, 1e-6)
            let gray = { (v: Tensor) in v.map { 0.5 + $0 / (2 * range) }.reshaped([side, side]) }
            items.append(.init(gray(x), caption: "patch"))
            items.append(.init(gray(r), caption: "recon"))
        }
        return ImagePanel(scale: 4, columns: 8, gap: 6, title: "\(t.label): validation patches and reconstructions").render(items)
    }
}
