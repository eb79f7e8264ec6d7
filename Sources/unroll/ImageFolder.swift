import Foundation
import UnrollCore
import UnrollIO

/// Gray images in [0, 1] from PNG files: 8- and 16-bit, gray or RGB(A) or palette (RGB is converted
/// with the ITU-R 601 luma weights, alpha dropped). Errors name the file and what is wrong.
enum ImageFolder {
    /// One image as `[height, width]`.
    static func readImage(_ path: String, option: String) throws -> Tensor {
        guard FileManager.default.fileExists(atPath: path) else { throw CLIError("\(option) \(path): no such file") }
        return try inContext("\(option) \(path)") { try PNG.readGray(path) }
    }

    /// One image's color planes in [0, 1]: one for gray, three for RGB (alpha dropped), each `[height, width]`.
    static func readPlanes(_ path: String, option: String) throws -> [Tensor] {
        guard FileManager.default.fileExists(atPath: path) else { throw CLIError("\(option) \(path): no such file") }
        return try inContext("\(option) \(path)") { try PNG.read(path).planes() }
    }

    /// Writes one plane as an 8-bit gray PNG, or three as RGB (values in [0, 1], clamped).
    static func write(planes: [Tensor], to path: String, option: String) throws {
        try inContext("\(option) \(path)") { try PNG.write(Raster(planes: planes), to: path) }
    }

    /// Every `*.png` in `folder` (sorted by name), as `(name, [height, width])`.
    static func load(_ folder: String, option: String) throws -> [(name: String, image: Tensor)] {
        try names(folder, option: option).map { name in (name, try readImage(folder + "/" + name, option: option)) }
    }

    /// The names of the `*.png` files in `folder`, sorted.
    static func names(_ folder: String, option: String) throws -> [String] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDir) else {
            throw CLIError("\(option) \(folder): no such folder")
        }
        guard isDir.boolValue else { throw CLIError("\(option) \(folder): not a folder (give a folder of PNG images)") }
        let names = try inContext("\(option) \(folder)") { try FileManager.default.contentsOfDirectory(atPath: folder) }
            .filter { $0.lowercased().hasSuffix(".png") }.sorted()
        guard !names.isEmpty else { throw CLIError("\(option) \(folder): no .png images in the folder") }
        return names
    }

    /// Writes `[height, width]` values in [0, 1] (clamped) as an 8-bit gray PNG.
    static func write(_ image: Tensor, to path: String, option: String) throws {
        try inContext("\(option) \(path)") { try PNG.write(Raster(gray: image), to: path) }
    }
}
