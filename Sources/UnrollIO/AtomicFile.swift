import Foundation
#if canImport(Glibc)
import Glibc
private let systemWrite = Glibc.write
#elseif canImport(Darwin)
import Darwin
private let systemWrite = Darwin.write
#endif

/// Writing a whole file so that readers (and a crash) see either the old file or the complete
/// new one, never a partial one: write a temporary file in the same directory, flush it to disk,
/// then rename it over the destination (rename is atomic within a file system).
public enum AtomicFile {
    public static func write(_ bytes: [UInt8], to path: String) throws {
        try bytes.withUnsafeBytes { try write(raw: $0, to: path) }
    }

    public static func write(_ data: Data, to path: String) throws {
        try data.withUnsafeBytes { try write(raw: $0, to: path) }
    }

    public static func write(_ text: String, to path: String) throws {
        try write(Array(text.utf8), to: path)
    }

    public static func write(raw: UnsafeRawBufferPointer, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw UnrollIOError(.unwritable, file: path, "cannot write: directory \(directory) does not exist")
        }
        let temp = directory + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        func failure(_ what: String) -> UnrollIOError {
            UnrollIOError(.unwritable, file: path, "cannot write (\(what)): \(String(cString: strerror(errno)))")
        }

        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure("creating a temporary file") }
        var ok = false
        defer {
            if !ok { unlink(temp) }
        }
        var written = 0
        while written < raw.count {
            let n = systemWrite(fd, raw.baseAddress! + written, raw.count - written)
            if n < 0 {
                if errno == EINTR { continue }
                let e = failure("writing")
                close(fd)
                throw e
            }
            written += n
        }
        if fsync(fd) != 0 {
            let e = failure("flushing to disk")
            close(fd)
            throw e
        }
        guard close(fd) == 0 else { throw failure("closing") }
        guard rename(temp, path) == 0 else { throw failure("renaming into place") }
        ok = true
    }
}
