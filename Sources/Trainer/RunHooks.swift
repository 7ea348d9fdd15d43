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
    /// Which file writes fail: given a file of the run about to be written, an `errno` to fail
    /// with (`ENOSPC`, `EACCES`), as `DurableWriter.fault`.
    public var writeFault: ((URL) -> Int32?)?

    public init(nonfiniteGradient: ((RunState.Phase, Int) -> Bool)? = nil, stopAfterGlobalStep: Int? = nil, writeFault: ((URL) -> Int32?)? = nil) {
        self.nonfiniteGradient = nonfiniteGradient
        self.stopAfterGlobalStep = stopAfterGlobalStep
        self.writeFault = writeFault
    }

    /// The cold start's or the learner's hooks for step `step` (counted from 1) of `phase`.
    func updateHooks(_ phase: RunState.Phase, step: Int) -> UpdateHooks {
        nonfiniteGradient?(phase, step) == true ? .nonfiniteGradients : UpdateHooks()
    }
}
