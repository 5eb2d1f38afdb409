// Float elementary functions written as straight-line code (no libm call, no branch), so
// that the elementwise loops of the activations and the softmax, which call them once per
// element, vectorise. libm's expf/erff are scalar calls: they made GELU the largest
// non-GEMM cost of a ViT training step (docs/benchmarks.md, "Training step").

/// e^x in Float with a relative error below 2 ulp (9·10⁻⁸ measured on [−87, 0]):
///
///     n = round(x / ln 2),   r = x − n·ln 2 ∈ [−ln 2 / 2, ln 2 / 2],   e^x = 2ⁿ · e^r
///
/// with n·ln 2 subtracted in two parts (Cody & Waite: ln 2 = 0.693359375 − 2.12194440·10⁻⁴,
/// the first part exact in a few bits, so n·ln2_hi is exact) and e^r from its Taylor
/// polynomial of degree 7 (remainder |r|⁸/8! < 6·10⁻⁹). n is rounded by adding and
/// subtracting 1.5·2²³, and 2ⁿ is built from its exponent bits. Below −87.34 the result is
/// exactly 0 (e^x would be subnormal; −∞ gives 0, as masked softmax entries need), above
/// 88.38 it is +∞; NaN propagates.
@inlinable @inline(__always)
public func branchFreeExp(_ x: Float) -> Float {
    let low: Float = -87.33654, high: Float = 88.37626
    let roundingShift: Float = 12_582_912   // 1.5·2²³: x + shift rounds x to an integer
    let clamped = Swift.min(Swift.max(x, low), high)
    let shifted = clamped * 1.442_695_04 + roundingShift   // n + shift, n = round(x·log₂e)
    let n = shifted - roundingShift
    let r = (clamped - n * 0.693_359_375) - n * -2.121_944_40e-4
    var p: Float = 1 / 5040                                   // Σ_{k ≤ 7} r^k / k!
    p = p * r + 1 / 720
    p = p * r + 1 / 120
    p = p * r + 1 / 24
    p = p * r + 1 / 6
    p = p * r + 0.5
    p = p * r + 1
    p = p * r + 1
    let twoToN = Float(bitPattern: (shifted.bitPattern &- roundingShift.bitPattern &+ 127) &<< 23)
    let result = p * twoToN
    return x < low ? 0 : (x > high ? .infinity : result)
}

/// The standard normal CDF Φ(x) = ½·erfc(−x/√2) and the Gaussian e^(−x²/2), in Float.
///
/// With z = |x|/√2 and t = 1/(1 + 0.375·z):
///
///     erfc(z) = t · P(t) · e^(−z²),   P(t) = 1 + (t − 1)·Q(t),   Q a polynomial of degree 7
///
/// P approximates the scaled complementary error function e^(z²)·erfc(z)/t, which is smooth
/// on t ∈ (0, 1]; its coefficients are a weighted least-squares fit made minimax by
/// iterative reweighting (relative error 1.3·10⁻⁸ over z ∈ [0, 9.5]). Writing P as
/// 1 + (t − 1)·Q makes P(1) = 1 exactly, so Φ(0) = ½ exactly. Then Φ(x) = ½·erfc(z) for
/// x < 0 and 1 − ½·erfc(z) otherwise: the lower tail keeps its *relative* accuracy
/// (½·(1 + erf(x/√2)) cancels to 0 there). Φ has a relative error below 4·10⁻⁶ for
/// |x| < 6 (the rounding of z² in the exponent dominates) and is exactly 0 below −13.2
/// and exactly 1 above 5.8. `gaussian` = e^(−x²/2) = e^(−z²) is returned too, because the
/// GELU derivative needs it.
@inlinable @inline(__always)
public func normalCDFAndGaussian(_ x: Float) -> (cdf: Float, gaussian: Float) {
    let z = abs(x) * 0.707_106_781
    let t = 1 / (1 + 0.375 * z)
    var q: Float = 0.061_385_948
    q = q * t - 0.225_228_846
    q = q * t + 0.205_745_310
    q = q * t - 0.022_097_092
    q = q * t + 0.250_580_549
    q = q * t + 0.372_516_453
    q = q * t + 0.577_723_145
    q = q * t + 0.788_387_358
    let gaussian = branchFreeExp(-(z * z))
    let halfErfc = 0.5 * t * (1 + (t - 1) * q) * gaussian
    return (x < 0 ? halfErfc : 1 - halfErfc, gaussian)
}
