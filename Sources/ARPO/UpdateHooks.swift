import Policy

/// A seam into each optimizer step of ``ReinforcementLearner`` and ``SupervisedTrainer``: what
/// runs between the backward pass and the gradient clipping. A run uses none. Tests inject faults
/// through it that a healthy run never meets, to exercise the paths that handle them (a
/// non-finite gradient must skip the update), without a test parameter in the step's signature.
public struct UpdateHooks {
    /// Called after the backward pass of each optimizer step, with the model whose accumulated
    /// gradients it may change, before they are clipped and applied.
    public var afterBackward: ((LlamaModel) -> Void)?

    public init(afterBackward: ((LlamaModel) -> Void)? = nil) {
        self.afterBackward = afterBackward
    }

    /// Makes every step's gradients non-finite (NaN in the embedding's), so every update is
    /// skipped.
    public static var nonfiniteGradients: UpdateHooks {
        UpdateHooks { $0.embedding.gradient?.fill(.nan) }
    }
}
