import UnrollCore

// One-call PNG output for the figure types (rendering, then `PNG.write`, which writes atomically).

extension LinePlot {
    public func writePNG(to path: String) throws { try PNG.write(render(), to: path) }
}

extension AtomGrid {
    public func writePNG(_ atoms: Tensor, to path: String) throws { try PNG.write(render(atoms), to: path) }
}

extension ImagePanel {
    public func writePNG(_ items: [Item], to path: String) throws { try PNG.write(render(items), to: path) }
}
