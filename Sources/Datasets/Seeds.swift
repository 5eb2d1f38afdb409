import Kernels

/// A seed derived from a base seed and a path of integers (e.g. epoch, sample index), so
/// that every sample's random stream depends only on *what* it is, never on which rank or
/// thread processes it or in which order.
///
/// Each step is h ← SplitMix64(h ⊕ (part · 0xD1B54A32D192ED03)), one output of a
/// generator seeded with the mixed value; different paths give unrelated streams.
public func derivedSeed(_ base: UInt64, _ parts: Int...) -> UInt64 {
    var h = base
    for part in parts {
        var generator = RandomGenerator(seed: h ^ (UInt64(bitPattern: Int64(part)) &* 0xD1B5_4A32_D192_ED03))
        h = generator.nextUInt64()
    }
    return h
}

extension RandomGenerator {
    /// A uniform Float in [low, high).
    @inline(__always)
    mutating func uniform(_ low: Float, _ high: Float) -> Float { low + (high - low) * nextFloat() }

    /// True with probability `p`.
    @inline(__always)
    mutating func chance(_ p: Float) -> Bool { nextFloat() < p }
}
