/// Lane masks as integer vectors (all ones or all zeros per lane), built with
/// integer arithmetic only.
///
/// Why not Swift's `SIMDMask` (`.<`, `replacing(with:where:)`, `pointwiseMax`):
/// Swift lowers them lane by lane, and a function that uses one has its other
/// SIMD16 arithmetic split into 128-bit pieces too (measured here: 10–40×
/// slower kernels). Sign-bit shifts, ands and ors compile to single AVX-512
/// instructions. The comparisons follow IEEE 754: any NaN compares false,
/// and -0 equals +0.
public typealias LaneMask = SIMD16<Int32>

extension VectorMath {
    @inline(__always) static func bits(_ x: Vec) -> SIMD16<Int32> { unsafeBitCast(x, to: SIMD16<Int32>.self) }
    @inline(__always) static func float(_ x: SIMD16<Int32>) -> Vec { unsafeBitCast(x, to: Vec.self) }

    /// All ones where x is NaN.
    @inline(__always)
    public static func isNaN(_ x: Vec) -> LaneMask {
        (SIMD16<Int32>(repeating: 0x7F80_0000) &- (bits(x) & 0x7FFF_FFFF)) &>> 31
    }

    /// All ones where x < y.
    @inline(__always)
    public static func less(_ x: Vec, _ y: Vec) -> LaneMask {
        let d = x - y
        let db = bits(d)
        let negative = db &>> 31
        let nonzero = ~(((db & 0x7FFF_FFFF) &- 1) &>> 31)
        return negative & nonzero & ~isNaN(d) & ~isNaN(x) & ~isNaN(y)
    }

    @inline(__always) public static func greater(_ x: Vec, _ y: Vec) -> LaneMask { less(y, x) }

    /// All ones where x == y (so +0 == -0, and NaN is equal to nothing).
    @inline(__always)
    public static func equal(_ x: Vec, _ y: Vec) -> LaneMask {
        ~less(x, y) & ~less(y, x) & ~isNaN(x) & ~isNaN(y)
    }

    @inline(__always) public static func lessEqual(_ x: Vec, _ y: Vec) -> LaneMask { less(x, y) | equal(x, y) }

    /// a where mask is set, else b.
    @inline(__always)
    public static func select(_ mask: LaneMask, _ a: Vec, _ b: Vec) -> Vec {
        float((bits(a) & mask) | (bits(b) & ~mask))
    }

    /// 1 where mask is set, else 0.
    @inline(__always)
    public static func ones(_ mask: LaneMask) -> Vec { float(mask & bits(Vec(repeating: 1))) }

    /// x with the sign of s.
    @inline(__always)
    public static func copySign(_ x: Vec, _ s: Vec) -> Vec {
        float((bits(x) & 0x7FFF_FFFF) | (bits(s) & SIMD16<Int32>(repeating: Int32(bitPattern: 0x8000_0000))))
    }
}
