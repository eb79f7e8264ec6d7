import Foundation
import UnrollCore
#if canImport(Glibc)
import Glibc
#endif

/// What a benchmark ran on: CPU, cores, load, and which OpenBLAS build (and kernel) sgemm used.
public enum MachineInfo {
    public static func summary() -> [String: String] {
        var s: [String: String] = [
            "cpu": cpuModel() ?? "unknown",
            "cores online": "\(ProcessInfoShim.activeProcessors)",
        ]
        if let l = loadAverage() { s["load average (1/5/15 min)"] = l }
        if let c = openBLASConfig() { s["OpenBLAS config"] = c }
        if let c = openBLASCore() { s["OpenBLAS core"] = c }
        if let v = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] { s["OPENBLAS_CORETYPE"] = v }
        return s
    }

    /// "model name" from /proc/cpuinfo.
    public static func cpuModel() -> String? {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("model name") {
            if let colon = line.firstIndex(of: ":") { return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces) }
        }
        return nil
    }

    public static func loadAverage() -> String? {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return nil }
        return text.split(separator: " ").prefix(3).joined(separator: " ")
    }

    /// `openblas_get_config()`: version and build options of the OpenBLAS we linked.
    public static func openBLASConfig() -> String? { openBLASString("openblas_get_config") }

    /// `openblas_get_corename()`: the kernel set OpenBLAS chose for this CPU (DYNAMIC_ARCH builds).
    public static func openBLASCore() -> String? { openBLASString("openblas_get_corename") }

    /// Calls an exported `char *f(void)` of the loaded OpenBLAS, looked up at run time because the
    /// system cblas.h does not declare these.
    static func openBLASString(_ symbol: String) -> String? {
        #if canImport(Glibc)
        guard let f = dlsym(UnsafeMutableRawPointer(bitPattern: 0), symbol) else { return nil }   // RTLD_DEFAULT
        typealias Getter = @convention(c) () -> UnsafePointer<CChar>?
        guard let p = unsafeBitCast(f, to: Getter.self)() else { return nil }
        return String(cString: p).trimmingCharacters(in: .whitespaces)
        #else
        return nil
        #endif
    }
}
