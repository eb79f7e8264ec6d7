import Foundation
import Testing

/// A fresh directory under the system temp dir, removed by `remove()`.
struct TempDir {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "unroll-io-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { path + "/" + name }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

struct PythonFailure: Error, CustomStringConvertible {
    let description: String
}

/// Runs Python scripts (with NumPy) as the independent reference for the file formats.
enum Python {
    /// Runs `script` with `python3` in `directory` and returns its standard output.
    /// A missing python3/numpy or a non-zero exit (failed assertion) throws with the script's stderr.
    @discardableResult
    static func run(_ script: String, in directory: String, arguments: [String] = []) throws -> String {
        let scriptPath = directory + "/script-\(UUID().uuidString).py"
        let outPath = scriptPath + ".out", errPath = scriptPath + ".err"
        let preamble = """
            import sys
            try:
                import numpy as np
            except ImportError:
                sys.stderr.write("numpy is missing for python3: run scripts/bootstrap.sh (UNROLL_NEED_NUMPY=1) or pip install numpy\\n")
                sys.exit(97)

            """
        try (preamble + script).write(toFile: scriptPath, atomically: true, encoding: .utf8)
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        let out = FileHandle(forWritingAtPath: outPath)!, err = FileHandle(forWritingAtPath: errPath)!
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", scriptPath] + arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.standardOutput = out
        process.standardError = err
        do { try process.run() } catch {
            throw PythonFailure(description: "cannot start python3 (needed as the NumPy reference for these tests): \(error)")
        }
        process.waitUntilExit()
        try? out.close(); try? err.close()
        let stdout = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        let stderr = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        if process.terminationStatus == 127 {
            throw PythonFailure(description: "python3 is not installed; these tests need python3 with numpy (scripts/bootstrap.sh)")
        }
        guard process.terminationStatus == 0 else {
            throw PythonFailure(description: "python3 exited with \(process.terminationStatus):\n\(stderr)\(stdout)")
        }
        return stdout
    }
}

/// Raw little-endian files exchanged with the Python side.
enum Raw {
    static func floats(_ path: String) throws -> [Float] {
        let d = try Data(contentsOf: URL(fileURLWithPath: path))
        return d.withUnsafeBytes { p in (0..<(d.count / 4)).map { Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) } }
    }

    static func doubles(_ path: String) throws -> [Double] {
        let d = try Data(contentsOf: URL(fileURLWithPath: path))
        return d.withUnsafeBytes { p in (0..<(d.count / 8)).map { Double(bitPattern: UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self))) } }
    }

    static func uint16s(_ path: String) throws -> [UInt16] {
        let d = try Data(contentsOf: URL(fileURLWithPath: path))
        return d.withUnsafeBytes { p in (0..<(d.count / 2)).map { UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)) } }
    }

    static func write(_ values: [Float], to path: String) throws {
        var bytes = [UInt8]()
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 } }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    static func write(_ values: [Double], to path: String) throws {
        var bytes = [UInt8]()
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 } }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    static func json(_ path: String) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
    }
}

/// Bitwise equality of float arrays, treating every NaN as equal to every NaN.
func sameFloats(_ a: [Float], _ b: [Float]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { x, y in x.bitPattern == y.bitPattern || (x.isNaN && y.isNaN) }
}
