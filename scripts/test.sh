#!/usr/bin/env bash
# Runs the whole XCTest suite: installs the system libraries if needed, then `swift test`.
# Extra arguments go to `swift test` (for example `--filter TensorTests`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
# The tests' figures do not depend on the BLAS kernel family; leave it as the machine has it.
exec swift test "$@"
