import Foundation
#if canImport(Glibc)
import Glibc
#endif

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
        var seen = Set<String>()
        let looked = candidates.map { URL(fileURLWithPath: $0).standardizedFileURL.path }.filter { seen.insert($0).inserted }
        throw BenchError("peer script \(script) not found (looked in: \(looked.joined(separator: ", "))); pass --scripts DIR or set UNROLL_BENCH_DIR")
    }

    /// Runs `python script args…` to completion and decodes its last stdout line as a JSON object.
    static func run(_ script: String, _ arguments: [String], options: BenchOptions,
                    environment extra: [String: String] = [:]) throws -> [String: Any] {
        let session = try Session(script, arguments, options: options, environment: extra, interactive: false)
        return try session.finish()
    }

    /// A running peer script. Interactive sessions get commands on stdin and answer one line each
    /// (`--serve` protocol: "ready", then one line per command, then the JSON object after "quit").
    final class Session {
        let script: String
        private let process = Process()
        private let input = Pipe(), output = Pipe()
        private let errPath: String
        private var buffer = Data()

        init(_ script: String, _ arguments: [String], options: BenchOptions, environment extra: [String: String],
             interactive: Bool) throws {
            self.script = script
            let dir = try PythonPeer.scriptDirectory(options, needing: script)
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [options.python, dir + "/" + script] + arguments
            var env = ProcessInfo.processInfo.environment
            for (k, v) in extra { env[k] = v }
            process.environment = env
            // stdout through a pipe; stderr to a file, so a chatty peer cannot fill a second pipe and stall.
            errPath = NSTemporaryDirectory() + "unroll-bench-\(getpid())-\(UInt64.random(in: 0..<UInt64.max)).stderr"
            _ = FileManager.default.createFile(atPath: errPath, contents: nil)
            process.standardOutput = output
            process.standardError = FileHandle(forWritingAtPath: errPath)
            process.standardInput = interactive ? input : FileHandle.nullDevice
            #if canImport(Glibc)
            signal(SIGPIPE, SIG_IGN)   // a peer that dies must give an error, not kill us through its closed stdin
            #endif
            do { try process.run() } catch {
                try? FileManager.default.removeItem(atPath: errPath)
                throw BenchError("could not start \(options.python): \(error)")
            }
        }

        deinit {
            if process.isRunning { process.terminate() }
            try? FileManager.default.removeItem(atPath: errPath)
        }

        /// Sends one command line.
        func send(_ line: String) throws {
            do { try input.fileHandleForWriting.write(contentsOf: Data((line + "\n").utf8)) } catch {
                throw failure("stopped reading commands")
            }
        }

        /// The next stdout line, or an error naming the script if it ended first.
        func readLine() throws -> String {
            while true {
                if let nl = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: buffer[buffer.startIndex..<nl], as: UTF8.self)
                    buffer.removeSubrange(buffer.startIndex...nl)
                    return line
                }
                let chunk = output.fileHandleForReading.availableData
                if chunk.isEmpty { throw failure("ended before answering") }
                buffer.append(chunk)
            }
        }

        /// Closes stdin, waits for the exit, and decodes the last stdout line as a JSON object.
        func finish() throws -> [String: Any] {
            try? input.fileHandleForWriting.close()
            buffer.append(output.fileHandleForReading.readDataToEndOfFile())
            process.waitUntilExit()
            guard process.terminationStatus == 0 else { throw failure("exited with status \(process.terminationStatus)") }
            let text = String(decoding: buffer, as: UTF8.self)
            guard let line = text.split(separator: "\n").last,
                  let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw BenchError("\(script) printed no JSON object (output: \(text.prefix(200)))")
            }
            return obj
        }

        private func failure(_ what: String) -> BenchError {
            let err = FileManager.default.contents(atPath: errPath).map { String(decoding: $0, as: UTF8.self) } ?? ""
            let last = err.split(separator: "\n").last.map(String.init) ?? ""
            return BenchError("\(script) \(what)\(last.isEmpty ? "" : ": \(last)")")
        }
    }
}
