import ArgumentParser
import Foundation
import CUnrollSupport
import UnrollCore

@main
struct UnrollCLI: ParsableCommand {
    static let version = "0.1.0"
    static let configuration = CommandConfiguration(
        commandName: "unroll",
        abstract: "Sparse coding and dictionary learning by algorithm unrolling.",
        version: version,
        subcommands: [Demo.self, Synth.self, Train.self, Encode.self, Eval.self, Info.self, Bench.self, Reproduce.self, Denoise.self, Explain.self, Spikes.self, VSC.self])

    static func main() {
        // Per-call convolution workspaces are large; without this, every call maps and faults them anew.
        unroll_keep_freed_memory()
        // Past a file-size limit (ulimit -f) a write then fails with EFBIG, which the atomic writers
        // report and clean up after, instead of the signal killing the process mid-file.
        signal(SIGXFSZ, SIG_IGN)
        main(nil)
    }
}
