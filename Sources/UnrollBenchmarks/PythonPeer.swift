import Foundation

/// Runs a peer script from `bench/` (NumPy now, PyTorch later) and reads the one JSON object it prints.
enum PythonPeer {
    /// The folder holding the peer scripts: the option, then `UNROLL_BENCH_DIR`, then `bench/` in the working
    /// directory or above the executable (for `.build/release/unroll` inside the package).
    static func scriptDirectory(_ options: BenchOptions, needing script: String) throws -> String {
        let fm = FileManager.default
        var candidates: [String] = []
        if let d = options.scriptDirectory { candidates.append(d) }
        if let d = ProcessInfo.processInfo.environment["UNROLL_BENCH_DIR"] { candidates.append(d) }
        candidates.append(fm.currentDirectoryPath + "/bench")
        var dir = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<6 {
            candidates.append(dir.appendingPathComponent("bench").path)
            dir.deleteLastPathComponent()
        }
        if let found = candidates.first(where: { fm.fileExists(atPath: $0 + "/" + script) }) { return found }
        throw BenchError("peer script \(script) not found (looked in: \(candidates.joined(separator: ", "))); pass --scripts DIR or set UNROLL_BENCH_DIR")
    }

    /// Runs `python script args…` and decodes its last stdout line as a JSON object.
    static func run(_ script: String, _ arguments: [String], options: BenchOptions,
                    environment extra: [String: String] = [:]) throws -> [String: Any] {
        let dir = try scriptDirectory(options, needing: script)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [options.python, dir + "/" + script] + arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in extra { env[k] = v }
        p.environment = env
        // stdout through a pipe; stderr to a file, so a chatty peer cannot fill a second pipe and stall.
        let out = Pipe()
        let errPath = NSTemporaryDirectory() + "unroll-bench-\(getpid())-\(UInt64.random(in: 0..<UInt64.max)).stderr"
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: errPath) }
        p.standardOutput = out
        p.standardError = FileHandle(forWritingAtPath: errPath)
        do { try p.run() } catch { throw BenchError("could not start \(options.python): \(error)") }
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let stderr = FileManager.default.contents(atPath: errPath) ?? Data()
        guard p.terminationStatus == 0 else {
            let msg = String(decoding: stderr, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
            throw BenchError("\(script) exited with status \(p.terminationStatus): \(msg)")
        }
        let text = String(decoding: stdout, as: UTF8.self)
        guard let line = text.split(separator: "\n").last,
              let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw BenchError("\(script) printed no JSON object (output: \(text.prefix(200)))")
        }
        return obj
    }
}
