import Foundation
import Testing
import UnrollCore
import UnrollIO

@Suite struct FigureTests {
    // MARK: atom grid

    @Test func atomGridPixelsAtTileCentresAndSeparators() {
        // Three 2×2 atoms, 2 columns, scale 3: tiles are 6×6 pixels with 1-pixel separators.
        let atoms = Tensor(rows: [[1, -1, 0, 0.5], [0, 0, 0, 0], [2, 2, 2, 2]])
        let grid = AtomGrid(atomHeight: 2, atomWidth: 2, columns: 2, scale: 3)
        let r = grid.render(atoms)
        #expect(r.width == 15 && r.height == 15 && r.channels == 1)
        func px(_ x: Int, _ y: Int) -> UInt8 { r.pixels[y * r.width + x] }
        // Tile 0 at (1, 1): atom pixel (row i, col j) covers x 1+3j…, y 1+3i…; centre of each block.
        #expect(px(2, 2) == 255)     // +1 = +max → white
        #expect(px(5, 2) == 1)       // −1 = −max → darkest
        #expect(px(2, 5) == 128)     // 0 → mid gray
        #expect(px(5, 5) == 192)     // 0.5·max → 128 + 63.5, rounded
        #expect(grid.tileOrigin(1, count: 3) == (8, 1) && grid.tileOrigin(2, count: 3) == (1, 8))
        #expect(px(11, 4) == 128)    // the zero atom is all mid gray
        #expect(px(4, 11) == 255)    // a constant atom is its own maximum
        #expect(px(11, 11) == 255)   // unused cell: separator colour
        for i in 0..<15 { #expect(px(0, i) == 255 && px(7, i) == 255 && px(i, 7) == 255 && px(i, 14) == 255) }
        // Contrast is per tile: scaling one atom does not change its picture.
        #expect(grid.render(Tensor(rows: [[10, -10, 0, 5], [0, 0, 0, 0], [2, 2, 2, 2]])) == r)
    }

    @Test func atomGridDefaultLayoutIsSquareish() {
        let grid = AtomGrid(atomHeight: 8, atomWidth: 8)
        #expect(grid.layout(count: 100) == (10, 10) && grid.layout(count: 101) == (11, 10) && grid.layout(count: 0) == (1, 1))
        let r = grid.render(Tensor(zeros: [100, 64]))
        #expect(r.width == 1 + 10 * 9 && r.height == 1 + 10 * 9)
    }

    // MARK: text

    @Test func textDrawsOnlyInsideItsBox() {
        var r = Raster(width: 60, height: 30, channels: 3, fill: 255)
        r.drawText("Hi", x: 5, y: 6, scale: 2, .black)
        let (w, h) = BitmapFont.size(of: "Hi", scale: 2)
        #expect(w == 22 && h == 14)
        var inside = 0
        for y in 0..<30 {
            for x in 0..<60 where r.color(x: x, y: y) != .white {
                #expect(x >= 5 && x < 5 + w && y >= 6 && y < 6 + h)
                inside += 1
            }
        }
        // 'H' (0x7F, 0x08, 0x08, 0x08, 0x7F) has 17 set font pixels, 'i' (0x44, 0x7D, 0x40) has 2+6+1 = 9:
        // 26 blocks of 2×2.
        #expect(inside == 26 * 4)
        // The full-height middle column of 'I' (0x7F).
        var s = Raster(width: 10, height: 10, channels: 1, fill: 255)
        s.drawText("I", x: 0, y: 0)
        #expect((0..<7).allSatisfy { s.pixels[$0 * 10 + 2] == 0 } && s.pixels[7 * 10 + 2] == 255)
        #expect(BitmapFont.columns(of: "é") == BitmapFont.columns(of: "?"))
    }

    @Test func verticalTextStaysInItsRotatedBox() {
        var r = Raster(width: 40, height: 60, channels: 1, fill: 255)
        r.drawTextVertical("ab", x: 4, y: 3, scale: 2)
        let (w, h) = BitmapFont.size(of: "ab", scale: 2)
        var count = 0
        for y in 0..<60 {
            for x in 0..<40 where r.pixels[y * 40 + x] != 255 {
                #expect(x >= 4 && x < 4 + h && y >= 3 && y < 3 + w)
                count += 1
            }
        }
        #expect(count > 0)
        // Reading bottom to top: the first letter sits at the bottom of the box.
        var a = Raster(width: 40, height: 60, channels: 1, fill: 255)
        a.drawTextVertical("a ", x: 4, y: 3, scale: 2)
        let rows = (0..<60).filter { y in (0..<40).contains { a.pixels[y * 40 + $0] != 255 } }
        #expect(rows.min()! >= 3 + w / 2)
    }

    // MARK: line plot

    @Test func horizontalSeriesIsOneRowBandInsideTheAxes() {
        var plot = LinePlot(title: "flat", xLabel: "x", yLabel: "y")
        let red = Color(255, 0, 0)
        plot.add("c", x: Array(0...10).map(Double.init), y: [Double](repeating: 5, count: 11), color: red)
        plot.legend = .none
        let r = plot.render()
        #expect(r.width == 800 && r.height == 500 && r.channels == 3)
        let f = plot.frame()
        var rows = Set<Int>(), columns = Set<Int>()
        for y in 0..<r.height { for x in 0..<r.width where r.color(x: x, y: y) == red { rows.insert(y); columns.insert(x) } }
        let expectedRow = Int(f.pixelY(5)!.rounded())
        #expect(rows.count == plot.lineThickness && rows.contains(expectedRow))
        #expect(rows.allSatisfy { $0 > f.top && $0 < f.bottom })   // the constant is centred, not on the frame
        #expect(columns.min()! == f.left && columns.max()! == f.right)
    }

    @Test func logAxisMapsDecadesToEqualSpacing() {
        var plot = LinePlot(xScale: .log10, yScale: .log10)
        plot.add("a", x: [1, 10, 100, 1000], y: [1e-3, 1e-2, 0.1, 1])
        let f = plot.frame()
        let ys = [1e-3, 1e-2, 1e-1, 1].map { f.pixelY($0)! }
        let xs = [1.0, 10, 100, 1000].map { f.pixelX($0)! }
        for k in 1..<3 {
            #expect(abs((ys[k] - ys[k + 1]) - (ys[k - 1] - ys[k])) < 1e-9)
            #expect(abs((xs[k + 1] - xs[k]) - (xs[k] - xs[k - 1])) < 1e-9)
        }
        // The range is rounded out to whole decades: the extremes sit on the frame.
        #expect(abs(ys[0] - Double(f.bottom)) < 1e-9 && abs(ys[3] - Double(f.top)) < 1e-9)
        #expect(f.pixelY(0) == nil && f.pixelY(-1) == nil && f.pixelX(.nan) == nil)
        // 2 lies log10(2) ≈ 30.1 % of the way from 1 to 10.
        let third = (f.pixelX(2)! - xs[0]) / (xs[1] - xs[0])
        #expect(abs(third - log10(2)) < 1e-9)
    }

    @Test func nonFinitePointsBreakTheLineAndEmptySeriesAreFine() {
        var plot = LinePlot()
        let blue = Color(0, 0, 255)
        plot.add("gap", x: [0, 1, 2, 3, 4], y: [1, 1, .nan, 1, 1], color: blue)
        plot.add("inf", x: [0, 1], y: [.infinity, -.infinity])
        plot.add("empty", x: [], y: [])
        plot.legend = .none
        let r = plot.render()
        let f = plot.frame()
        let gapColumn = Int(f.pixelX(2)!.rounded())
        let band = Int(f.pixelY(1)!.rounded())
        #expect(!(band - 3...band + 3).contains { r.color(x: gapColumn, y: $0) == blue })
        #expect((band - 3...band + 3).contains { r.color(x: Int(f.pixelX(0.5)!.rounded()), y: $0) == blue })
        // Nothing drawable at all still gives axes.
        var empty = LinePlot(title: "nothing", yScale: .log10)
        empty.add("neg", x: [1, 2], y: [-1, 0])
        let e = empty.render()
        #expect(e.pixels.contains { $0 == 0 })
    }

    @Test func autoLegendAvoidsTheCurve() {
        var plot = LinePlot()
        plot.add("diagonal", x: [0, 1], y: [0, 1])   // bottom-left to top-right
        let r = plot.render()
        let f = plot.frame()
        // The legend box (dark gray border) sits in the top-left corner, 10 px inside the frame.
        #expect(r.color(x: f.left + 10, y: f.top + 10) == .darkGray)
        #expect(r.color(x: f.right - 10, y: f.top + 10) != .darkGray)
    }

    @Test func tickLabelsAreDrawnLeftOfAndBelowTheAxes() {
        var plot = LinePlot()
        plot.add("a", x: [0, 100], y: [0, 1])
        plot.legend = .none
        let r = plot.render()
        let f = plot.frame()
        let y1 = Int(f.pixelY(1)!.rounded()), x100 = Int(f.pixelX(100)!.rounded())
        // Black label pixels in the band left of the y axis at y = 1, and under the x axis at x = 100.
        #expect((0..<(f.left - 8)).contains { x in (y1 - 7...y1 + 7).contains { r.color(x: x, y: $0) == .black } })
        #expect((f.bottom + 8..<f.bottom + 30).contains { y in (x100 - 10...x100 + 10).contains { r.color(x: $0, y: y) == .black } })
    }

    // MARK: image panel

    @Test func imagePanelPlacesImagesAndCaptions() {
        let a = Tensor(rows: [[0, 1, 0.5], [1, 0, 0.25]])
        let b = Tensor(rows: [[0.2]])
        let panel = ImagePanel(scale: 2, gap: 4)
        let items = [ImagePanel.Item(a, caption: "A"), ImagePanel.Item(b, caption: "wide caption")]
        let r = panel.render(items)
        let o = panel.origins(items)
        func px(_ x: Int, _ y: Int) -> UInt8 { r.pixels[y * r.width + x] }
        #expect(px(o[0].x, o[0].y) == 0 && px(o[0].x + 2, o[0].y) == 255 && px(o[0].x + 5, o[0].y + 3) == 64)
        #expect(px(o[1].x + 1, o[1].y + 1) == 51)
        // The caption of "A" is under its image, centred: dark pixels in the band below.
        let captionTop = o[0].y + 2 * 2 + 3
        #expect((captionTop..<captionTop + 7).contains { y in (o[0].x..<o[0].x + 6).contains { px($0, y) < 128 } })
        // The second cell is as wide as its caption, so the images do not overlap the text.
        #expect(o[1].x > o[0].x + 6)
        #expect(r.width >= o[1].x + BitmapFont.size(of: "wide caption").width / 2)
    }

    // MARK: files

    @Test func figuresWriteReadablePNGs() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("unroll-figures-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var plot = LinePlot(title: "t", width: 200, height: 120)
        plot.add("s", y: [3, 1, 2])
        try plot.writePNG(to: dir + "/plot.png")
        let back = try PNG.read(dir + "/plot.png")
        let expected = plot.render()
        #expect(back.width == 200 && back.height == 120 && back.channels == 3)
        #expect(back.samples.map { UInt8($0) } == expected.pixels)
        let grid = AtomGrid(atomHeight: 2, atomWidth: 2)
        try grid.writePNG(Tensor(rows: [[1, 0, 0, -1]]), to: dir + "/atoms.png")
        #expect(try PNG.read(dir + "/atoms.png").samples.map { UInt8($0) } == grid.render(Tensor(rows: [[1, 0, 0, -1]])).pixels)
    }
}
