#!/usr/bin/env bash
# The main job: installs the system libraries if needed, builds in release mode, and trains the
# multi-turn policy of configs/multiturn.json (cold-start SFT, then ARPO) into runs/multiturn.
# Extra arguments go to arpo-train (for example --resume, or --output DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
swift build -c release --product arpo-train
.build/release/arpo-train --config configs/multiturn.json "$@"
echo "Accuracy per task family: runs/multiturn/summary.json (README, \"What the quickstart learns\"); one-call arithmetic alone: .build/release/arpo-train --config configs/arithmetic.json"
