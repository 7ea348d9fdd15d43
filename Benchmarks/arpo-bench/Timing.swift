import Foundation
import Tensor

/// Median, min and max of repeated measurements.
struct Measurement: Codable {
    let median: Double
    let min: Double
    let max: Double

    init(_ samples: [Double]) {
        precondition(!samples.isEmpty, "no samples measured")
        let sorted = samples.sorted()
        let middle = sorted.count / 2
        median = sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
        min = sorted.first!
        max = sorted.last!
    }
}

enum Timer {
    /// Seconds since an arbitrary origin, from a monotonic clock.
    static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
    }

    /// Runs `body` `warmUp` times, then `repetitions` timed rounds of enough calls to last at least
    /// `minimumSeconds`; returns seconds per call for each round.
    static func secondsPerCall(warmUp: Int = 2, repetitions: Int, minimumSeconds: Double = 0.2, _ body: () -> Void) -> [Double] {
        for _ in 0..<warmUp { body() }
        // Calibrate calls per round from one timed call.
        let start = now()
        body()
        let single = Swift.max(now() - start, 1e-7)
        let calls = Swift.max(1, Int((minimumSeconds / single).rounded(.up)))
        return (0..<repetitions).map { _ in
            let begin = now()
            for _ in 0..<calls { body() }
            return (now() - begin) / Double(calls)
        }
    }
}

/// Peak resident set size of this process so far, in MiB (VmHWM).
func peakResidentMegabytes() -> Double {
    guard let status = BLASRuntime.readProcFile("/proc/self/status"),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
    else { return 0 }
    let kilobytes = Double(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
    return kilobytes / 1024
}
