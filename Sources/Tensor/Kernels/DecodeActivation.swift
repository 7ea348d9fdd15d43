import CKernels

// The decode path's SwiGLU activation, silu(gate) · up, in one pass over the fused gate/up
// projection: the training kernel's formula and vectorising exponential on the fused layout.

extension Kernels {
    /// `result[r, i] = silu(x[r, i]) · x[r, F + i]` for dense (R, 2F) `input` and (R, F) `result`.
    static func swiGLU(_ input: Tensor, into result: Tensor) {
        let rows = result.shape[0], width = result.shape[1]
        func run<T: TensorScalar>(_: T.Type) {
            let x = input.pointer(T.self), y = result.pointer(T.self)
            for r in 0..<rows {
                let gate = x + r * 2 * width, up = gate + width, output = y + r * width
                for i in 0..<width { output[i] = gate[i] * sigmoid(gate[i]) * up[i] }
            }
        }
        if result.dtype == .float32 && useAVX512 {
            let x = input.pointer(Float.self), y = result.pointer(Float.self)
            for r in 0..<rows { ck_swiglu_forward(width, x + r * 2 * width, x + r * 2 * width + width, y + r * width) }
            return
        }
        switch result.dtype {
        case .float32: run(Float.self)
        case .float64: run(Double.self)
        }
    }
}
