import Foundation
import Unroll
import UnrollIO

/// The denoising models the package ships (Sources/unroll/Resources), listed with the noise each
/// serves in `denoise-models.json`: noise-adaptive models trained by `scripts/train-denoiser.sh`, one
/// over σ 5–55/255, one at σ 35/255 and one at σ 50/255, each serving the σ where it is best on the
/// held-out images (from 17.5/255 the σ 35 model, from 28/255 the σ 50 one).
/// Python's `ConvolutionalDenoiser.pretrained` reads the same list.
enum ShippedDenoiser {
    /// The models' files, and the σ at which each after the first takes over.
    static func files() throws -> (paths: [String], switchingAt: [Float]) {
        guard let url = Bundle.module.url(forResource: "denoise-models", withExtension: "json", subdirectory: "Resources") else {
            throw CLIError("the list of the package's denoising models (denoise-models.json) is missing from its resources (Sources/unroll/Resources)")
        }
        let list = (try? JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])?["models"] as? [[String: Any]] ?? []
        let entries = list.compactMap { e in (e["file"] as? String).flatMap { f in (e["from_sigma_255"] as? Double).map { (f, $0) } } }
        guard !entries.isEmpty, entries.count == list.count else { throw CLIError("\(url.path): expected {\"models\": [{\"file\", \"from_sigma_255\"}, …]}") }
        let directory = url.deletingLastPathComponent()
        let paths = try entries.map { file, _ in
            let path = directory.appendingPathComponent(file).path
            guard FileManager.default.fileExists(atPath: path) else {
                throw CLIError("the package's denoising model \(file) is missing from its resources (Sources/unroll/Resources)")
            }
            return path
        }
        return (paths, entries.dropFirst().map { Float($0.1 / 255) })
    }

    static func models() throws -> Denoisers {
        let (paths, bounds) = try files()
        return (try paths.map { try ModelFile.read($0, option: "the shipped model").conv2d($0, option: "the shipped model") }, bounds)
    }
}
