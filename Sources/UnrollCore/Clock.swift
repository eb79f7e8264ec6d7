extension Duration {
    /// The duration in seconds.
    public var seconds: Double {
        let c = components
        return Double(c.seconds) + Double(c.attoseconds) * 1e-18
    }
}

/// Wall-clock seconds since `start`.
public func secondsSince(_ start: ContinuousClock.Instant) -> Double { (ContinuousClock.now - start).seconds }
