import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One owner per run: an advisory lock (`flock`) on a lock file beside a run's outputs, held until
/// this value is released or the process ends (a killed run holds nothing, so `--resume` can start
/// at once). Taking it also removes the temporary files that a killed `AtomicFile.write` of the
/// run's outputs left behind (safe: no other process writes them while the lock is held).
public final class RunLock {
    public let path: String
    private let descriptor: Int32

    /// Locks `lockFile` (created if missing) or throws naming the process that holds it; then removes
    /// stale temporaries of `outputs` (paths of files this run writes atomically, or folders the run
    /// owns whole: every temporary in them).
    public init(lockFile: String, outputs: [String]) throws {
        let fd = open(lockFile, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw UnrollIOError(.unwritable, file: lockFile, "cannot create the run's lock file: \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOfFile: lockFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(fd)
            throw UnrollIOError(.unwritable, file: lockFile,
                                "another unroll run\(holder.isEmpty ? "" : " (pid \(holder))") is writing these outputs; wait for it or use another output")
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        path = lockFile
        descriptor = fd
        for output in outputs { Self.removeStaleTemporaries(of: output) }
    }

    /// The lock of the run that writes the model `model` (`<dir>/.<name>.lock`), and the
    /// temporaries of the model and of `outputs`.
    public convenience init(model: String, outputs: [String] = []) throws {
        let url = URL(fileURLWithPath: model)
        try self.init(lockFile: url.deletingLastPathComponent().path + "/." + url.lastPathComponent + ".lock",
                      outputs: [model] + outputs)
    }

    deinit {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }

    /// The lock of a run that owns the folder `folder` (its model, checkpoint, log and figures).
    public convenience init(folder: String) throws {
        try self.init(lockFile: folder + "/.model.safetensors.lock", outputs: [folder])
    }

    /// Deletes `<dir>/.<name>.tmp-*`, the temporaries `AtomicFile.write(to: <dir>/<name>)` makes (for
    /// a folder: `<folder>/.*.tmp-*`).
    static func removeStaleTemporaries(of output: String) {
        var isFolder: ObjCBool = false
        let owned = FileManager.default.fileExists(atPath: output, isDirectory: &isFolder) && isFolder.boolValue
        let url = URL(fileURLWithPath: output)
        let directory = owned ? output : url.deletingLastPathComponent().path
        let prefix = owned ? "." : "." + url.lastPathComponent + ".tmp-"
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for entry in entries where entry.hasPrefix(prefix) && (!owned || entry.contains(".tmp-")) {
            try? FileManager.default.removeItem(atPath: directory + "/" + entry)
        }
    }
}
