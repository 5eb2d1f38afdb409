import Foundation

/// A linear map from a data interval onto a pixel interval:
/// pixel(v) = start + (v − d₀)/(d₁ − d₀)·(end − start), for `domain` = [d₀, d₁].
/// `end` < `start` flips the axis (SVG's y grows downwards). A zero-width domain maps
/// every value to the middle of the pixel interval.
public struct LinearScale: Equatable, Sendable {
    public var domain: ClosedRange<Double>
    public var start: Double
    public var end: Double

    public init(domain: ClosedRange<Double>, start: Double, end: Double) {
        self.domain = domain
        self.start = start
        self.end = end
    }

    /// The pixel coordinate of `value`.
    public func callAsFunction(_ value: Double) -> Double {
        let span = domain.upperBound - domain.lowerBound
        guard span > 0 else { return (start + end) / 2 }
        return start + (value - domain.lowerBound) / span * (end - start)
    }
}

/// Axis ticks at "nice" values: multiples of a step that is 1, 2 or 5 × 10ᵏ.
public enum Ticks {
    /// The smallest step of the form 1, 2, 5 × 10ᵏ that is at least `span`/`target`
    /// (about `target` intervals over `span`); 1 for an empty or non-finite span.
    public static func step(span: Double, target: Int = 5) -> Double {
        guard span > 0, span.isFinite, target > 0 else { return 1 }
        let raw = span / Double(target)
        let magnitude = pow(10, (log10(raw)).rounded(.down))
        let residual = raw / magnitude
        let nice: Double = residual <= 1 + 1e-9 ? 1 : residual <= 2 + 1e-9 ? 2 : residual <= 5 + 1e-9 ? 5 : 10
        return nice * magnitude
    }

    /// [lower, upper] widened outwards to multiples of `step(span:target:)`. A single
    /// value v becomes [v − |v|/10, v + |v|/10] first ([0, 1] for 0), so it still spans
    /// an axis.
    public static func niceDomain(_ lower: Double, _ upper: Double, target: Int = 5) -> ClosedRange<Double> {
        var low = min(lower, upper), high = max(lower, upper)
        guard low.isFinite, high.isFinite else { return 0...1 }
        if high == low {
            if low == 0 { return 0...1 }
            let pad = abs(low) / 10
            low -= pad
            high += pad
        }
        let s = step(span: high - low, target: target)
        let niceLow = (low / s + 1e-9).rounded(.down) * s
        let niceHigh = (high / s - 1e-9).rounded(.up) * s
        return niceLow...max(niceHigh, niceLow + s)
    }

    /// The multiples of `step` inside `domain` (ends included up to float rounding), each
    /// computed as k·step so that errors do not accumulate.
    public static func values(in domain: ClosedRange<Double>, step: Double) -> [Double] {
        guard step > 0, step.isFinite else { return [] }
        let first = Int((domain.lowerBound / step - 1e-9).rounded(.up))
        let last = Int((domain.upperBound / step + 1e-9).rounded(.down))
        guard first <= last, last - first <= 1000 else { return [] }
        return (first...last).map { Double($0) * step }
    }

    /// `value` with as many decimals as `step` needs (step 0.05 → 2, step 20 → 0).
    public static func label(_ value: Double, step: Double) -> String {
        let decimals = step > 0 && step < 1 ? Int((-log10(step) - 1e-9).rounded(.up)) : 0
        let shown = abs(value) < step * 1e-6 ? 0 : value
        return String(format: "%.\(decimals)f", shown)
    }
}
