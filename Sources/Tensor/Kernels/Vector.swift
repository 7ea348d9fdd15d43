// Eight-lane SIMD helpers shared by the Swift kernels (decode attention, RMSNorm, rotary): the
// Swift targets build for baseline x86-64, so loops with a running sum, or whose pointers the
// compiler cannot prove apart, vectorise only when written in SIMD8 values.
extension Kernels {
    /// Eight lanes from `pointer`, which need not be aligned.
    @inline(__always)
    static func load<T: SIMDScalar>(_ pointer: UnsafePointer<T>) -> SIMD8<T> {
        UnsafeRawPointer(pointer).loadUnaligned(as: SIMD8<T>.self)
    }

    /// Eight lanes to `pointer`, which need not be aligned.
    @inline(__always)
    static func store<T: SIMDScalar>(_ vector: SIMD8<T>, _ pointer: UnsafeMutablePointer<T>) {
        UnsafeMutableRawPointer(pointer).storeBytes(of: vector, as: SIMD8<T>.self)
    }

    /// Σ a[i]·b[i], eight lanes at a time.
    @inline(__always)
    static func dot<T: TensorScalar & SIMDScalar>(_ a: UnsafePointer<T>, _ b: UnsafePointer<T>, _ n: Int) -> T {
        var s0 = SIMD8<T>(), s1 = SIMD8<T>()
        var i = 0
        while i + 16 <= n {
            s0 += load(a + i) * load(b + i)
            s1 += load(a + i + 8) * load(b + i + 8)
            i += 16
        }
        var tail = T.zero
        while i < n {
            tail += a[i] * b[i]
            i += 1
        }
        return (s0 + s1).sum() + tail
    }

    /// y += w·x over n elements, eight lanes at a time.
    @inline(__always)
    static func addScaled<T: TensorScalar & SIMDScalar>(_ w: T, _ x: UnsafePointer<T>, to y: UnsafeMutablePointer<T>, _ n: Int) {
        let weight = SIMD8<T>(repeating: w)
        var i = 0
        while i + 8 <= n {
            store(load(UnsafePointer(y + i)) + weight * load(x + i), y + i)
            i += 8
        }
        while i < n {
            y[i] += w * x[i]
            i += 1
        }
    }

    /// Σ a[i]·b[i]·c[i], in SIMD lanes like `dot`.
    @inline(__always)
    static func weightedDot<T: TensorScalar & SIMDScalar>(_ a: UnsafePointer<T>, _ b: UnsafePointer<T>, _ c: UnsafePointer<T>, _ n: Int) -> T {
        var s0 = SIMD8<T>(), s1 = SIMD8<T>()
        var i = 0
        while i + 16 <= n {
            s0 += load(a + i) * load(b + i) * load(c + i)
            s1 += load(a + i + 8) * load(b + i + 8) * load(c + i + 8)
            i += 16
        }
        var tail = T.zero
        while i < n {
            tail += a[i] * b[i] * c[i]
            i += 1
        }
        return (s0 + s1).sum() + tail
    }
}
