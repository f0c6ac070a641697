import Foundation

/// The few statistics the analyses report about their own spread (over batches,
/// noise draws, attack restarts), in one place so every analysis means the same thing.
public enum Statistics {
    /// The arithmetic mean (NaN for no values).
    public static func mean(_ values: [Double]) -> Double {
        values.isEmpty ? .nan : values.reduce(0, +) / Double(values.count)
    }

    /// The sample standard deviation (n − 1 in the denominator); 0 for a single
    /// value (no spread was measured), NaN for none.
    public static func standardDeviation(_ values: [Double]) -> Double {
        guard values.count > 1 else { return values.isEmpty ? .nan : 0 }
        let m = mean(values)
        return (values.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(values.count - 1)).squareRoot()
    }

    /// The smallest room above chance for which `scaledError` gives a number: below
    /// it the model is (almost) at chance on clean images and the ratio is noise.
    public static let minimumRoomAboveChance = 0.02

    /// The error a perturbation adds, as a share of the room the model had above
    /// chance: (error − cleanError) / ((1 − cleanError) − 1/classes). 0 = no harm,
    /// 1 = down to chance; it lets models of different clean accuracy be compared.
    /// nil when the room (clean accuracy − chance accuracy) is ≤ `minimumRoomAboveChance`.
    public static func scaledError(_ error: Double, cleanError: Double, classes: Int) -> Double? {
        let room = (1 - cleanError) - 1 / Double(max(classes, 1))
        guard room > minimumRoomAboveChance, error.isFinite, cleanError.isFinite else { return nil }
        return (error - cleanError) / room
    }
}

/// The spread of one quantity over independent repeats (training seeds,
/// Hessian batches, sign draws): every value, their mean, sample standard
/// deviation and a two-sided 95 % confidence interval for the mean from
/// Student's t distribution (n − 1 degrees of freedom).
///
/// With n = 1 there is no spread to estimate: `std` is 0 and the interval is
/// nil, which every verdict reads as "inconclusive".
public struct Spread: Codable, Equatable, Sendable {
    public var values: [Double]
    public var mean: Double
    public var std: Double
    /// [low, high], or nil when there are fewer than two values.
    public var interval: [Double]?

    public init(_ values: [Double]) {
        precondition(!values.isEmpty, "Spread of no values")
        self.values = values
        mean = Statistics.mean(values)
        std = Statistics.standardDeviation(values)
        if values.count < 2 {
            interval = nil
        } else {
            let half = Self.tCritical95(degreesOfFreedom: values.count - 1) * std / Double(values.count).squareRoot()
            interval = [mean - half, mean + half]
        }
    }

    /// Whether the interval lies wholly above `value` (false without an interval).
    public func excludesAbove(_ value: Double) -> Bool { interval.map { $0[0] > value } ?? false }
    /// Whether the interval lies wholly below `value` (false without an interval).
    public func excludesBelow(_ value: Double) -> Bool { interval.map { $0[1] < value } ?? false }

    /// The 0.975 quantile of Student's t with `df` degrees of freedom (a two-sided 95 % interval).
    /// Exact to three decimals for df ≤ 30 (the standard table); beyond, the normal's 1.960
    /// plus the first term of the Cornish–Fisher expansion, (z³ + z)/(4·df), which is within 0.002.
    public static func tCritical95(degreesOfFreedom df: Int) -> Double {
        precondition(df >= 1, "t quantile needs at least one degree of freedom")
        let table: [Double] = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                               2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                               2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]
        if df <= table.count { return table[df - 1] }
        let z = 1.959964
        return z + (z * z * z + z) / (4 * Double(df))
    }
}

/// A proportion's 95 % Wilson score interval (Wilson 1927): better than the normal
/// approximation near 0 and 1 and for small counts.
public func wilsonInterval(successes: Int, trials: Int) -> [Double] {
    precondition(trials > 0 && successes >= 0 && successes <= trials, "wilsonInterval: \(successes) of \(trials)")
    let z = 1.959964, n = Double(trials), p = Double(successes) / n
    let centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    let half = z / (1 + z * z / n) * (p * (1 - p) / n + z * z / (4 * n * n)).squareRoot()
    return [max(0, centre - half), min(1, centre + half)]
}
