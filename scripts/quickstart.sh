#!/usr/bin/env bash
# The main job: installs the system libraries if needed, builds in release mode, and trains the
# quickstart policy (cold-start SFT, then ARPO) into runs/quickstart. Extra arguments go to
# arpo-train (for example --resume, or --output DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
swift build -c release --product arpo-train
.build/release/arpo-train --config configs/quickstart.json "$@"
echo "Multi-turn tool use (search, chained searches, compose, unanswerable): .build/release/arpo-train --config configs/multiturn.json (README, \"Multi-turn tool use\")"
