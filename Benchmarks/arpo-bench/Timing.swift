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
        withoutActuallyEscaping(body) { body in
            interleavedSecondsPerCall(warmUp: warmUp, repetitions: repetitions, minimumSeconds: minimumSeconds, [body])[0]
        }
    }

    /// `secondsPerCall` for several bodies whose rounds alternate (A B, B A, A B, …), so that
    /// a change in the machine's speed during the measurement hits each alike: this VM's host
    /// shifts the same sgemm between two speeds some 30% apart every few seconds. Returns the
    /// seconds per call of each round, per body. `pause` seconds of sleep, untimed, come before
    /// every round, for bodies whose effects outlast them (OpenBLAS's own threads poll for about
    /// 0.1 s after each call, on the cores the next round needs).
    static func interleavedSecondsPerCall(warmUp: Int = 2, repetitions: Int, minimumSeconds: Double = 0.2, pause: Double = 0, _ bodies: [() -> Void]) -> [[Double]] {
        let calls = bodies.map { body -> Int in
            for _ in 0..<warmUp { body() }
            // Calibrate calls per round from one timed call.
            let start = now()
            body()
            let single = Swift.max(now() - start, 1e-7)
            return Swift.max(1, Int((minimumSeconds / single).rounded(.up)))
        }
        var seconds = [[Double]](repeating: [], count: bodies.count)
        for round in 0..<repetitions {
            let order = round % 2 == 0 ? Array(bodies.indices) : bodies.indices.reversed()
            for index in order {
                if pause > 0 { Thread.sleep(forTimeInterval: pause) }
                let begin = now()
                for _ in 0..<calls[index] { bodies[index]() }
                seconds[index].append((now() - begin) / Double(calls[index]))
            }
        }
        return seconds
    }
}

/// Peak resident set size of this process so far, in MiB (VmHWM).
func peakResidentMegabytes() -> Double { statusMegabytes("VmHWM:") }

/// Resident set size of this process now, in MiB (VmRSS).
func residentMegabytes() -> Double { statusMegabytes("VmRSS:") }

/// A kilobyte field of /proc/self/status, in MiB (0 where there is no /proc).
private func statusMegabytes(_ field: String) -> Double {
    guard let status = BLASRuntime.readProcFile("/proc/self/status"),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field) })
    else { return 0 }
    let kilobytes = Double(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
    return kilobytes / 1024
}

/// Resets VmHWM to the current resident size by writing "5" to /proc/self/clear_refs (Linux
/// 4.0 and later). Returns whether the peak now reads no more than the current size plus a
/// little, i.e. whether the reset took effect.
@discardableResult
func resetPeakResidentMemory() -> Bool {
    guard let handle = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { return false }
    do {
        try handle.write(contentsOf: Data("5".utf8))
        try handle.close()
    } catch {
        return false
    }
    return peakResidentMegabytes() <= residentMegabytes() + 1
}

/// CPU time of the whole machine against this process's own, to tell how much of the machine
/// other processes took while a benchmark ran.
struct CPUAccount {
    let wall: Double
    let machineBusy: Double
    let own: Double

    /// Busy CPU-seconds of all cores since boot: user, nice, system, irq, softirq and steal
    /// (time the hypervisor gave to someone else) from /proc/stat's first line.
    static func machineBusySeconds() -> Double {
        guard let stat = BLASRuntime.readProcFile("/proc/stat"), let line = stat.split(separator: "\n").first else { return 0 }
        let fields = line.split(separator: " ").dropFirst().compactMap { Double($0) }
        guard fields.count >= 8 else { return 0 }
        let busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7]
        return busy / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// CPU-seconds of this process and of its waited-for children.
    static func ownSeconds() -> Double {
        func seconds(_ who: Int32) -> Double {
            var usage = rusage()
            getrusage(__rusage_who_t(who), &usage)
            return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) * 1e-6 + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) * 1e-6
        }
        return seconds(RUSAGE_SELF.rawValue) + seconds(RUSAGE_CHILDREN.rawValue)
    }

    static func now() -> CPUAccount { CPUAccount(wall: Timer.now(), machineBusy: machineBusySeconds(), own: ownSeconds()) }

    /// Cores' worth of CPU other processes used since `self`.
    func otherLoad(until end: CPUAccount = .now()) -> Double {
        let wall = end.wall - self.wall
        guard wall > 0 else { return 0 }
        return Swift.max(0, (end.machineBusy - machineBusy) - (end.own - own)) / wall
    }
}
