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
