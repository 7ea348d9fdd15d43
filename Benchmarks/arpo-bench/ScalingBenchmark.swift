import ArgumentParser
import Foundation

/// `arpo-bench scaling`: what data parallelism over MPI gains on this machine
/// (docs/distributed.md). The same short job (a run config's model, a few SFT and RL steps from
/// random weights) runs twice in one invocation, as 1 process × 2 threads and as
/// `mpirun -np 2` × 1 thread, with the real `arpo-train` built beside this binary; each step's
/// seconds come from the runs' metrics.jsonl. The ratio is the 1-process median step time over
/// the 2-rank one: above 1, two ranks are faster.
struct ScalingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scaling",
        abstract: "An SFT step and an RL step on 2 MPI ranks × 1 thread against 1 process × 2 threads (needs Open MPI's mpirun and a release arpo-train).")

    @Option(name: .long, help: "The run config whose model and batches are measured.")
    var config = "configs/multiturn.json"

    @Option(name: .long, help: "SFT steps per run (the first is not counted).")
    var sftSteps = 30

    @Option(name: .long, help: "RL steps per run (the first is not counted).")
    var rlSteps = 4

    @Option(name: .long, help: "Write the figures as JSON to this path.")
    var json: String?

    func validate() throws {
        guard sftSteps >= 2, rlSteps >= 2 else { throw ValidationError("--sft-steps and --rl-steps must be at least 2 (the first step of each phase is not counted)") }
    }

    /// One layout's median step seconds.
    struct Layout: Codable {
        var ranks: Int
        var threadsPerRank: Int
        var sftStepSeconds: Double
        var rlStepSeconds: Double
        var wallSeconds: Double
    }

    struct Result: Codable {
        var config: String
        var single: Layout
        var parallel: Layout
        /// single / parallel median step seconds: above 1, two ranks are faster.
        var sftSpeedup: Double
        var rlSpeedup: Double
    }

    func run() throws {
        let trainer = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("arpo-train")
        guard FileManager.default.isExecutableFile(atPath: trainer.path) else {
            throw ValidationError("no arpo-train beside arpo-bench (\(trainer.path)): swift build -c release --product arpo-train")
        }
        guard let mpirun = ScalingCommand.findExecutable("mpirun") else {
            throw ValidationError("mpirun not found: apt-get install openmpi-bin (scripts/bootstrap.sh installs it)")
        }
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("arpo-bench-scaling-\(getpid())")
        defer { try? FileManager.default.removeItem(at: scratch) }
        func measure(ranks: Int, threads: Int) throws -> Layout {
            let output = scratch.appendingPathComponent("\(ranks)x\(threads)")
            let job = [trainer.path, "--config", config, "--output", output.path, "--quiet",
                       "--set", "sft.steps=\(sftSteps)", "--set", "rl.steps=\(rlSteps)", "--set", "run.threads=\(threads)",
                       "--set", "eval.every=0", "--set", "eval.episodes=8", "--set", "eval.sample_trajectories=0", "--set", "run.checkpoint_every=100000"]
            let command = ranks == 1 ? job : [mpirun.path, "-np", "\(ranks)", "--allow-run-as-root", "--bind-to", "none"] + job
            print("  \(ranks) rank\(ranks == 1 ? "" : "s") × \(threads) thread\(threads == 1 ? "" : "s"): \(command.joined(separator: " "))")
            let start = Date()
            let process = Process()
            process.executableURL = URL(fileURLWithPath: command[0])
            process.arguments = Array(command.dropFirst())
            try process.run()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else { throw ValidationError("the \(ranks)-rank run failed with status \(process.terminationStatus)") }
            let wall = Date().timeIntervalSince(start)
            let records = try String(contentsOf: output.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n").map {
                try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
            }
            func median(_ values: [Double]) -> Double { values.isEmpty ? .nan : Measurement(values).median }
            let sft = records.filter { $0["phase"] as? String == "sft" }.dropFirst().compactMap { $0["seconds"] as? Double }
            let rl = records.filter { $0["phase"] as? String == "rl" }.dropFirst().compactMap { record -> Double? in
                guard let rollout = record["rollout_seconds"] as? Double, let update = record["update_seconds"] as? Double else { return nil }
                return rollout + update
            }
            return Layout(ranks: ranks, threadsPerRank: threads, sftStepSeconds: median(sft), rlStepSeconds: median(rl), wallSeconds: wall)
        }
        print("Scaling on \(config): \(sftSteps) SFT and \(rlSteps) RL steps from random weights per run")
        let single = try measure(ranks: 1, threads: 2)
        let parallel = try measure(ranks: 2, threads: 1)
        let result = Result(
            config: config, single: single, parallel: parallel,
            sftSpeedup: single.sftStepSeconds / parallel.sftStepSeconds, rlSpeedup: single.rlStepSeconds / parallel.rlStepSeconds)
        print("")
        print("| step | 1 rank × 2 threads | 2 ranks × 1 thread | ratio (1×2 / 2×1) |")
        print("| --- | ---: | ---: | ---: |")
        print(String(format: "| SFT | %.3f s | %.3f s | %.2f× |", single.sftStepSeconds, parallel.sftStepSeconds, result.sftSpeedup))
        print(String(format: "| RL | %.3f s | %.3f s | %.2f× |", single.rlStepSeconds, parallel.rlStepSeconds, result.rlSpeedup))
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(result).write(to: URL(fileURLWithPath: json), options: .atomic)
        }
    }

    static func findExecutable(_ name: String) -> URL? {
        let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init) + ["/usr/bin"]
        return directories.map { URL(fileURLWithPath: $0).appendingPathComponent(name) }.first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }
}
