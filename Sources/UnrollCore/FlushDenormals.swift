import CUnrollSupport

/// Flush-to-zero / denormals-are-zero for the calling thread.
///
/// Unrolled networks produce denormal values in their backward pass; on x86 each one costs
/// a microcode assist, enough to make a training step many times slower. The flag is
/// per thread, so `Parallel` sets it in its workers too.
public enum FlushDenormals {
    /// Turns flushing on or off for the calling thread; returns the previous state.
    @discardableResult
    public static func set(_ on: Bool) -> Bool { unroll_set_flush_denormals(on) }

    public static var isEnabled: Bool { unroll_flush_denormals_enabled() }

    /// Runs `body` with flushing set to `on`, restoring the previous state afterwards.
    public static func with<R>(_ on: Bool = true, _ body: () throws -> R) rethrows -> R {
        let was = set(on)
        defer { set(was) }
        return try body()
    }
}
