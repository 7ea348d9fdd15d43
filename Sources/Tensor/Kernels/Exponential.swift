// An exponential and a sum that vectorise.
//
// libm's expf is a call per element, so a loop over it cannot use SIMD; in a base train step the
// sigmoid of SwiGLU and the softmax of attention spent about 10% of the time in it. The float32
// exponential below is straight-line arithmetic that the compiler vectorises; float64 keeps libm
// (gradient checks and fixtures run in float64 and need its last digit).

extension Kernels {
    /// e^x for float32, Cephes' `expf` (range reduction x = n·ln2 + r with ln2 split in two, a
    /// degree-6 polynomial for e^r, then 2^n built in the exponent bits): within 2 ulp of the
    /// exact value for x ≤ 88.3. Results below float32's normal range (x < −87.3) flush to 0,
    /// −∞ gives 0 and NaN gives NaN. The kernels call it only with x ≤ 0 (softmax after the row
    /// maximum, sigmoid of −|x|).
    @inline(__always)
    static func exponential(_ x: Float) -> Float {
        let clamped = Swift.min(Swift.max(x, -87.33654), 88.3)
        // Adding 1.5·2²³ rounds to the nearest integer and leaves it in the low mantissa bits.
        let shifter: Float = 12_582_912
        let shifted = clamped * 1.442_695_04 + shifter
        let n = shifted - shifter
        let r = clamped - n * 0.693_359_375 + n * 2.121_944_40e-4
        var p: Float = 1.987_569_150e-4
        p = p * r + 1.398_199_950_7e-3
        p = p * r + 8.333_451_907_3e-3
        p = p * r + 4.166_579_589_4e-2
        p = p * r + 1.666_666_545_9e-1
        p = p * r + 5.000_000_120_1e-1
        let er = p * (r * r) + r + 1
        let scale = Float(bitPattern: (shifted.bitPattern &- shifter.bitPattern &+ 127) &<< 23)
        let result = er * scale
        return x < -87.33654 ? 0 : result
    }

    /// e^x: the vectorising float32 version above, libm for float64.
    @inline(__always)
    static func exponential<T: TensorScalar>(_ x: T) -> T {
        if T.self == Float.self { return unsafeBitCast(exponential(unsafeBitCast(x, to: Float.self)), to: T.self) }
        return T.exp(x)
    }

    /// Σ x[0..<n] in eight interleaved partial sums (lanes a SIMD unit can hold), added together
    /// in a fixed order at the end: the result depends on n alone, not on threads or alignment.
    @inline(__always)
    static func sum<T: TensorScalar>(_ x: UnsafePointer<T>, _ n: Int) -> T {
        var lanes = (T.zero, T.zero, T.zero, T.zero, T.zero, T.zero, T.zero, T.zero)
        var j = 0
        while j + 8 <= n {
            lanes.0 += x[j]; lanes.1 += x[j + 1]; lanes.2 += x[j + 2]; lanes.3 += x[j + 3]
            lanes.4 += x[j + 4]; lanes.5 += x[j + 5]; lanes.6 += x[j + 6]; lanes.7 += x[j + 7]
            j += 8
        }
        var total = ((lanes.0 + lanes.4) + (lanes.1 + lanes.5)) + ((lanes.2 + lanes.6) + (lanes.3 + lanes.7))
        while j < n {
            total += x[j]
            j += 1
        }
        return total
    }
}
