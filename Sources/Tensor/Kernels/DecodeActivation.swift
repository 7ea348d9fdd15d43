// The decode path's SwiGLU activation, silu(gate) · up, in one pass over the fused gate/up
// projection. Float32 runs eight lanes at a time with a polynomial exp; its reference is the
// composed `silu() * ` (tested against it), and float64 computes exactly that.

extension Kernels {
    /// `result[r, i] = silu(x[r, i]) · x[r, F + i]` for dense (R, 2F) `input` and (R, F) `result`.
    static func swiGLU(_ input: Tensor, into result: Tensor) {
        let rows = result.shape[0], width = result.shape[1]
        switch result.dtype {
        case .float32:
            let x = input.pointer(Float.self), y = result.pointer(Float.self)
            for r in 0..<rows { swiGLURow(x + r * 2 * width, y + r * width, width) }
        case .float64:
            let x = input.pointer(Double.self), y = result.pointer(Double.self)
            for r in 0..<rows {
                let g = x + r * 2 * width, y = y + r * width
                for i in 0..<width { y[i] = g[i] * sigmoid(g[i]) * g[width + i] }
            }
        }
    }

    private static func swiGLURow(_ gate: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        let up = gate + n
        var i = 0
        while i + 8 <= n {
            let g = UnsafeRawPointer(gate + i).loadUnaligned(as: SIMD8<Float>.self)
            let u = UnsafeRawPointer(up + i).loadUnaligned(as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(y + i).storeBytes(of: g * u / (1 + exp(-g)), as: SIMD8<Float>.self)
            i += 8
        }
        if i < n {
            var g = SIMD8<Float>(), u = SIMD8<Float>()
            for lane in 0..<(n - i) {
                g[lane] = gate[i + lane]
                u[lane] = up[i + lane]
            }
            let value = g * u / (1 + exp(-g))
            for lane in 0..<(n - i) { y[i + lane] = value[lane] }
        }
    }

    /// eˣ in eight lanes, within 2 ulp of `expf` on [−87, 88] (inputs outside are clamped to it,
    /// which silu's 1 / (1 + e⁻ˣ) does not notice): 2ⁿ · eʳ with n = round(x·log₂e), r = x − n·ln 2
    /// and Cephes' degree-6 polynomial for eʳ. SSE2 only: the rounding adds and subtracts
    /// 1.5·2²³, and 2ⁿ is built in the exponent bits.
    @inline(__always)
    static func exp(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let lower = SIMD8<Float>(repeating: -87), upper = SIMD8<Float>(repeating: 88)
        var clamped = x.replacing(with: lower, where: x .< lower)
        clamped.replace(with: upper, where: clamped .> upper)
        let shifter: Float = 12_582_912  // 1.5·2²³: adding it rounds to an integer, kept in the low mantissa bits
        let shifted = clamped * 1.442_695_04 + shifter
        let n = shifted - shifter
        let r = clamped - n * 0.693_359_375 + n * 2.121_944_4e-4  // ln 2 split in two for accuracy
        var p = SIMD8<Float>(repeating: 1.987_569_15e-4)
        p = p * r + 1.398_199_95e-3
        p = p * r + 8.333_451_91e-3
        p = p * r + 4.166_579_59e-2
        p = p * r + 1.666_666_55e-1
        p = p * r + 5.000_000_12e-1
        let er = p * (r * r) + r + 1
        let integer = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- unsafeBitCast(SIMD8<Float>(repeating: shifter), to: SIMD8<Int32>.self)
        let scale = unsafeBitCast((integer &+ 127) &<< 23, to: SIMD8<Float>.self)
        return er * scale
    }
}
