import ARPO
import Foundation

/// What a run takes from outside its configuration: the seam through which tests inject faults,
/// and through which the command line stops a run early for a partial run. ``TrainingRun`` uses
/// none unless given them.
public struct RunHooks {
    /// Which optimizer steps get non-finite gradients: given (phase, phase step counted from 1),
    /// true makes that step's gradients NaN, which must make the update be skipped and logged.
    public var nonfiniteGradient: ((RunState.Phase, Int) -> Bool)?
    /// Behave as if SIGINT arrived once this many global steps are done: a checkpoint, then exit
    /// status 130. `arpo-train` sets it from `ARPO_STOP_AFTER_STEPS` (docs/configuration.md).
    public var stopAfterGlobalStep: Int?
    /// The writer of every file of the run: tests make writes fail through its `fault` (a full
    /// disk, a permission) and watch the order of fsyncs and renames through its `observer`.
    public var writer: DurableWriter

    public init(nonfiniteGradient: ((RunState.Phase, Int) -> Bool)? = nil, stopAfterGlobalStep: Int? = nil, writer: DurableWriter = DurableWriter()) {
        self.nonfiniteGradient = nonfiniteGradient
        self.stopAfterGlobalStep = stopAfterGlobalStep
        self.writer = writer
    }

    /// The cold start's or the learner's hooks for step `step` (counted from 1) of `phase`.
    func updateHooks(_ phase: RunState.Phase, step: Int) -> UpdateHooks {
        nonfiniteGradient?(phase, step) == true ? .nonfiniteGradients : UpdateHooks()
    }
}
