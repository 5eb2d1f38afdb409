#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A small deterministic pseudo-random generator (SplitMix64, Steele, Lea & Flood 2014)
/// used for every parameter initialisation and data shuffle in the project.
///
/// Reproducibility: the sequence is a pure function of the seed, computed with wrapping
/// 64-bit integer arithmetic only, so `nextUInt64`, `nextFloat`, `nextInt(upperBound:)`
/// and `fillUniform` give bit-identical results on every platform, compiler and
/// number of MPI ranks (seed every rank with the same value, or with a value derived
/// from the rank when streams must differ). `nextGaussian` goes through libm's `log`,
/// `sqrt` and `cos` in Double and rounds to Float; correctly rounded libms (glibc,
/// Apple) agree, and a last-bit Double difference would change the Float result only
/// when it straddles a rounding boundary.
///
/// Not cryptographically secure.
public struct RandomGenerator: RandomNumberGenerator, Sendable {
    /// The SplitMix64 state (a Weyl sequence advanced by the golden-ratio increment).
    public private(set) var state: UInt64

    /// A generator whose sequence is fully determined by `seed`.
    public init(seed: UInt64) { state = seed }

    /// The next 64 uniformly distributed bits.
    @inline(__always)
    public mutating func nextUInt64() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// `RandomNumberGenerator` conformance (same stream as `nextUInt64`). Note that the
    /// standard library's algorithms built on it (`shuffle(using:)`, …) are not
    /// guaranteed stable across Swift versions; use `nextInt(upperBound:)` for
    /// reproducible shuffles.
    @inline(__always)
    public mutating func next() -> UInt64 { nextUInt64() }

    /// A uniform Float in [0, 1): the top 24 bits scaled by 2⁻²⁴, so every value is an
    /// exact multiple of 2⁻²⁴.
    @inline(__always)
    public mutating func nextFloat() -> Float {
        Float(nextUInt64() >> 40) * 0x1p-24
    }

    /// A uniform integer in 0..<upperBound, without modulo bias (Lemire's multiply-shift
    /// with rejection).
    public mutating func nextInt(upperBound: Int) -> Int {
        precondition(upperBound > 0, "RandomGenerator.nextInt: upperBound must be positive, got \(upperBound)")
        let bound = UInt64(upperBound)
        var product = nextUInt64().multipliedFullWidth(by: bound)
        if product.low < bound {
            let threshold = (0 &- bound) % bound
            while product.low < threshold { product = nextUInt64().multipliedFullWidth(by: bound) }
        }
        return Int(product.high)
    }

    /// A standard normal sample (mean 0, variance 1) by the Box–Muller transform,
    ///
    ///     z = √(−2 ln u₁)·cos(2π u₂),   u₁ ∈ (0, 1], u₂ ∈ [0, 1) with 53-bit resolution,
    ///
    /// computed in Double. Consumes exactly two `nextUInt64` values per sample (the
    /// sine partner is discarded), so `fillGaussian(count: n)` equals n calls.
    public mutating func nextGaussian() -> Float {
        let u1 = (Double(nextUInt64() >> 11) + 1) * 0x1p-53
        let u2 = Double(nextUInt64() >> 11) * 0x1p-53
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }

    /// Fills p[0..<count] with low + (high − low)·u, u uniform in [0, 1).
    public mutating func fillUniform(_ p: UnsafeMutablePointer<Float>, count: Int,
                                     low: Float, high: Float) {
        let width = high - low
        for i in 0..<count { p[i] = low + width * nextFloat() }
    }

    /// Fills p[0..<count] with mean + std·z, z standard normal (`nextGaussian`).
    public mutating func fillGaussian(_ p: UnsafeMutablePointer<Float>, count: Int,
                                      mean: Float = 0, std: Float = 1) {
        for i in 0..<count { p[i] = mean + std * nextGaussian() }
    }
}
