// swift-tools-version:5.10
// Layers, lowest first: the BLAS/LAPACK system targets, Tensor, Policy, ToolEnv (no tensor code),
// ToolServers (MCP servers as ToolEnv tools), ARPO, Trainer, and the thin executables.
// RunRecords (the records of metrics.jsonl, eval.jsonl, summary.json, fork_decisions.jsonl and
// trees.jsonl; Foundation only) sits below ARPO, which makes the rollout records, Trainer, which
// writes them all, and Report, which reads them. Imports only point down.
import PackageDescription

/// Release builds drop exclusivity checks in the numeric targets: their hot loops work on raw
/// buffers whose aliasing the kernels already guarantee.
let numericSettings: [SwiftSetting] = [
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "ARPOTrainer",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "Tensor", targets: ["Tensor"]),
        .library(name: "Policy", targets: ["Policy"]),
        .library(name: "ToolEnv", targets: ["ToolEnv"]),
        .library(name: "ARPO", targets: ["ARPO"]),
        .library(name: "RunRecords", targets: ["RunRecords"]),
        .library(name: "Distributed", targets: ["Distributed"]),
        .library(name: "Trainer", targets: ["Trainer"]),
        .library(name: "Report", targets: ["Report"]),
        .executable(name: "arpo-train", targets: ["arpo-train"]),
        .executable(name: "arpo-bench", targets: ["arpo-bench"]),
        .executable(name: "units-server", targets: ["units-server"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-numerics", from: "1.0.0"),
        // SHA-256 of checkpoint files (the checkpoint manifest).
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        // The MCP client of the tool servers (ToolServers), and the example server's SDK.
        .package(url: "https://github.com/modelcontextprotocol/swift-sdk", from: "0.12.1"),
        .package(url: "https://github.com/apple/swift-system", from: "1.0.0"),
    ],
    targets: [
        // System libraries: Debian's libopenblas-dev and liblapacke-dev.
        .systemLibrary(
            name: "COpenBLAS",
            path: "Sources/COpenBLAS",
            providers: [.apt(["libopenblas-dev"])]
        ),
        .systemLibrary(
            name: "CLAPACKE",
            path: "Sources/CLAPACKE",
            providers: [.apt(["liblapacke-dev"])]
        ),
        // Hand-vectorised decode kernels in C: AVX-512 chosen at run time. Optimised even in debug
        // builds, where the intrinsics would otherwise run at a tenth of their speed.
        .target(
            name: "CKernels",
            cSettings: [.unsafeFlags(["-O2"])]
        ),
        .target(
            name: "Tensor",
            dependencies: [
                "CKernels",
                "COpenBLAS",
                "CLAPACKE",
                .product(name: "RealModule", package: "swift-numerics"),
            ],
            swiftSettings: numericSettings
        ),
        .target(name: "Policy", dependencies: ["Tensor"], swiftSettings: numericSettings),
        .target(name: "ToolEnv"),
        // The processes of a data-parallel job (mpirun): Open MPI loaded at run time, no build
        // dependency on MPI (docs/distributed.md); Foundation only.
        .target(name: "Distributed"),
        .target(name: "ARPO", dependencies: ["Tensor", "Policy", "ToolEnv", "RunRecords", "Distributed"], swiftSettings: numericSettings),
        // MCP tool servers over stdio (env.mcp_servers): the one target that speaks MCP.
        .target(
            name: "ToolServers",
            dependencies: ["ToolEnv", .product(name: "MCP", package: "swift-sdk"), .product(name: "SystemPackage", package: "swift-system")]
        ),
        // The records of every file a run writes, shared by writer and reader.
        .target(name: "RunRecords"),
        .target(
            name: "Trainer",
            dependencies: ["Tensor", "Policy", "ToolEnv", "ToolServers", "ARPO", "RunRecords", "Distributed", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: numericSettings
        ),
        // The HTML/SVG page and the Markdown results document over finished run directories.
        // Tensor only for the CPU model that a results document records.
        .target(name: "Report", dependencies: ["RunRecords", "Tensor"]),
        .executableTarget(
            name: "arpo-train",
            dependencies: ["Trainer", "Report", "Tensor", "Distributed", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "arpo-bench",
            dependencies: [
                "Tensor",
                "COpenBLAS",
                "Policy",
                "ARPO",
                "ToolEnv",
                // rl-step reads a run config (configs/multiturn.json) as arpo-train does.
                "Trainer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Benchmarks/arpo-bench",
            swiftSettings: numericSettings
        ),
        // The worked example's MCP tool server (examples/units): unit conversion and weekdays.
        .executableTarget(
            name: "units-server",
            dependencies: [.product(name: "MCP", package: "swift-sdk")],
            path: "examples/units-server"
        ),
        .testTarget(name: "TensorTests", dependencies: ["Tensor"]),
        .testTarget(name: "DistributedTests", dependencies: ["Distributed", "Tensor", "Policy", "ARPO"]),
        // The Hugging Face parity fixture is read from its path (#filePath), not bundled.
        .testTarget(name: "PolicyTests", dependencies: ["Policy", "Tensor"], exclude: ["Fixtures"]),
        .testTarget(name: "ToolEnvTests", dependencies: ["ToolEnv"]),
        .testTarget(name: "TrainerTests", dependencies: ["Trainer", "Distributed", "Report", "RunRecords", "ARPO", "Policy", "ToolEnv", "Tensor", "units-server"]),
        .testTarget(name: "ARPOTests", dependencies: ["ARPO", "Policy", "ToolEnv", "Tensor", "RunRecords"]),
        // The misbehaving server is run from its path (#filePath), not bundled; the example
        // server is the units-server product beside the test bundle.
        .testTarget(name: "ToolServersTests", dependencies: ["ToolServers", "ToolEnv", "units-server"], exclude: ["Fixtures"]),
        .testTarget(name: "BenchmarkTests", dependencies: ["arpo-bench", "Tensor"]),
    ]
)
