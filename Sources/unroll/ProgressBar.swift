import CUnrollSupport
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A one-line progress bar on standard error, redrawn in place with `\r`, at most ten times a second.
/// It draws only when standard error is a terminal, so logs and pipes stay clean.
final class ProgressBar {
    let total: Int
    let label: String
    let enabled: Bool
    private let start = ContinuousClock.now
    private var lastDraw: ContinuousClock.Instant?
    private var drawn = false

    init(total: Int, label: String, enabled: Bool = isatty(STDERR_FILENO) != 0) {
        self.total = max(total, 1)
        self.label = label
        self.enabled = enabled
    }

    /// Shows `done` of `total` with a short `detail` (e.g. the current loss).
    func update(_ done: Int, detail: String = "") {
        guard enabled else { return }
        let now = ContinuousClock.now
        if let last = lastDraw, now - last < .milliseconds(100), done < total { return }
        lastDraw = now
        let elapsed = (now - start).seconds
        let fraction = min(1, Double(done) / Double(total))
        var eta = ""
        if done > 0 && done < total {
            eta = "  eta " + Self.duration(elapsed / fraction - elapsed)
        }
        let text = "\(label) \(done)/\(total)  \(Self.duration(elapsed))\(eta)  \(detail)"
        let columns = Self.terminalColumns()
        let barWidth = 24
        let filled = Int((fraction * Double(barWidth)).rounded(.down))
        let bar = "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: barWidth - filled) + "] "
        var line = bar + text
        if line.count > columns - 1 { line = String(line.prefix(max(0, columns - 1))) }
        write("\r\u{1B}[2K" + line)
        drawn = true
    }

    /// Clears the bar (the caller prints its own summary afterwards).
    func finish() {
        guard enabled, drawn else { return }
        write("\r\u{1B}[2K")
        drawn = false
    }

    private func write(_ s: String) {
        FileHandle.standardError.write(Data(s.utf8))
    }

    /// "42s", "3m05s", "1h02m".
    static func duration(_ s: Double) -> String {
        guard s.isFinite, s >= 0 else { return "?" }
        let t = Int(s.rounded())
        if t < 60 { return s < 10 ? String(format: "%.1fs", s) : "\(t)s" }
        if t < 3600 { return String(format: "%dm%02ds", t / 60, t % 60) }
        return String(format: "%dh%02dm", t / 3600, (t % 3600) / 60)
    }

    static func terminalColumns() -> Int {
        var size = winsize()
        if ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
        return 80
    }
}

/// Makes standard output line-buffered even when it is a pipe or a file, so results printed line by
/// line (the demo's table rows, summaries) show up as they are made.
func lineBufferedOutput() {
    unroll_line_buffer_stdout()
}
