#!/usr/bin/env bash
# Runs the whole XCTest suite: installs the system libraries if needed, builds every target
# (the end-to-end tests run the real arpo-train and arpo-bench binaries) and the release
# arpo-train (the multi-turn learning test trains with it), then `swift test`.
# Extra arguments go to `swift test` (for example `--filter TensorTests`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
swift build --build-tests
swift build -c release --product arpo-train
# XCTest only: the Swift Testing runner would close with "0 tests" after XCTest's summary.
exec swift test --skip-build --disable-swift-testing "$@"
