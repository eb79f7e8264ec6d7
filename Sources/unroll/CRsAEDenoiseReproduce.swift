import Foundation
import Unroll
import UnrollCore
import UnrollExperiments

/// `unroll reproduce crsae-denoise`: loads the image folders and runs `CRsAEDenoiseExperiment`.
/// Images: `$UNROLL_IMAGES/train` and `$UNROLL_IMAGES/test` (default: `images/` of `SharedData.folder`).
/// `--methods` picks runs by `<tied|untied>-<em|em-backprop|free-bias|fixed>`, e.g. `tied-em,untied-em`;
/// `--steps` overrides the training steps per run.
enum CRsAEDenoiseReproduce {
    static let choices: [(name: String, value: CRsAEDenoiseExperiment.Run)] =
        CRsAE2DNetwork.Tying.allCases.flatMap { tying in
            [CRsAE2DBias.em(form: .closedForm), .em(form: .backprop), .freeBias, .fixed].map { bias in
                ("\(tying.rawValue)-\(bias.name)", CRsAEDenoiseExperiment.Run(tying, bias))
            }
        }

    static func run(scale: ReproductionScale, seed: UInt64, steps: Int?, methods: String?, guardLipschitz: Bool = false,
                    callbacks: ReproductionCallbacks) throws -> ReproductionResult {
        let root = ProcessInfo.processInfo.environment["UNROLL_IMAGES"] ?? SharedData.folder + "/images"
        var s = CRsAEDenoiseExperiment.settings(scale)
        s.seed = seed
        if let n = steps { s.steps = n }
        if guardLipschitz { s.config.guardLipschitz = true }
        if let methods { s.runs = try parseChoices(methods, "--methods", choices) }
        let train = try ImageFolder.load(root + "/train", option: "crsae-denoise training images ($UNROLL_IMAGES/train)").map(\.image)
        let test = try ImageFolder.load(root + "/test", option: "crsae-denoise test images ($UNROLL_IMAGES/test)").map(\.image)
        return try CRsAEDenoiseExperiment.run(s, train: train, test: test, scale: scale.rawValue, callbacks: callbacks)
    }
}
