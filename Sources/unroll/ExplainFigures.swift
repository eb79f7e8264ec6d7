import Foundation
import Unroll
import UnrollCore
import UnrollIO

/// The interpretability figures (PUDLE Figs 7–10), one row per atom or test image:
///   atoms:    learned atom | its estimate X c_j | the k most contributing training images | the k least
///   examples: test image | reconstruction ẑᵀW | estimate from the top-|β| terms | k most | k least
/// Captions under the training images: normalised weight and label.
enum ExplainFigures {
    /// Pixel upscaling so an image is about 64–84 pixels wide.
    static func scale(width: Int) -> Int { max(1, 80 / max(1, width)) }

    static func image(_ v: [Float], _ h: Int, _ w: Int) -> Tensor { Tensor(shape: [h, w], data: v) }

    /// Linear map of `v` to [0, 1] using the range of `reference` (so an atom and its estimate share a scale).
    static func stretch(_ v: [Float], like reference: [Float]) -> [Float] {
        let lo = reference.min() ?? 0, hi = reference.max() ?? 1
        let span = hi - lo
        return v.map { span > 0 ? ($0 - lo) / span : 0.5 }
    }

    static func blank(_ h: Int, _ w: Int) -> ImagePanel.Item { ImagePanel.Item(Tensor(shape: [h, w], data: [Float](repeating: 1, count: h * w))) }

    static func weighted(_ list: [WeightedImage], _ h: Int, _ w: Int) -> [ImagePanel.Item] {
        list.map { ImagePanel.Item(image($0.image, h, w), caption: String(format: "%+.3f L%d", $0.weight, $0.label)) }
    }

    static func atoms(_ list: [AtomExplanation], dataset: String, height h: Int, width w: Int) -> Raster {
        var items: [ImagePanel.Item] = []
        let k = list.first?.most.count ?? 0
        for a in list {
            items.append(ImagePanel.Item(image(stretch(a.learned, like: a.learned), h, w), caption: "atom \(a.atom)"))
            items.append(ImagePanel.Item(image(stretch(a.estimate, like: a.learned), h, w),
                                         caption: String(format: "Xc gap %.0e", a.gap)))
            items.append(blank(h, w))
            items += weighted(a.most, h, w)
            items.append(blank(h, w))
            items += weighted(a.least, h, w)
        }
        let panel = ImagePanel(scale: scale(width: w), columns: 2 * k + 4, gap: 8,
                               title: "\(dataset): atom | estimate X c_j (same scale) || \(k) most contributing || \(k) least  (c_jk/|c_j|, label)")
        return panel.render(items)
    }

    static func examples(_ list: [ExampleExplanation], dataset: String, height h: Int, width w: Int) -> Raster {
        var items: [ImagePanel.Item] = []
        let k = list.first?.most.count ?? 0
        let terms = list.first?.estimateTerms ?? 0
        for e in list {
            items.append(ImagePanel.Item(image(e.image, h, w), caption: "test \(e.testIndex) L\(e.label)"))
            items.append(ImagePanel.Item(image(e.reconstruction, h, w), caption: "zW"))
            items.append(ImagePanel.Item(image(e.estimate, h, w), caption: "top \(e.estimateTerms) b"))
            items.append(blank(h, w))
            items += weighted(e.most, h, w)
            items.append(blank(h, w))
            items += weighted(e.least, h, w)
        }
        let panel = ImagePanel(scale: scale(width: w), columns: 2 * k + 5, gap: 8,
                               title: "\(dataset): test image | reconstruction | sum of top \(terms) beta_k x_k || \(k) most contributing || \(k) least  (beta_k/|beta|, label)")
        return panel.render(items)
    }

    /// interpret-<data>-atoms.png and interpret-<data>-examples.png in `folder`; returns the paths.
    @discardableResult
    static func write(atoms: [AtomExplanation], examples: [ExampleExplanation], data: LabeledImages, to folder: String) throws -> [String] {
        var paths: [String] = []
        if !atoms.isEmpty {
            let path = "\(folder)/interpret-\(data.name)-atoms.png"
            try PNG.write(Self.atoms(atoms, dataset: data.name, height: data.height, width: data.width), to: path)
            paths.append(path)
        }
        if !examples.isEmpty {
            let path = "\(folder)/interpret-\(data.name)-examples.png"
            try PNG.write(Self.examples(examples, dataset: data.name, height: data.height, width: data.width), to: path)
            paths.append(path)
        }
        return paths
    }
}
