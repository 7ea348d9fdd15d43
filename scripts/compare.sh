#!/usr/bin/env bash
# Compares GRPO, PPO and ARPO (issue 8): one cold start (SFT, then the post-SFT evaluation), then
# configs/{grpo,ppo,arpo}.json from that cold start with each seed, then the HTML report and
# docs/RESULTS.md, both written from the runs' outputs. Run from anywhere; paths are relative to
# the repository root.
#
# Environment:
#   OUT          where the runs go (default runs/compare)
#   SEEDS        seeds per algorithm (default "0 1 2")
#   CONFIGS_DIR  where grpo.json, ppo.json and arpo.json are (default configs)
#   RESULTS      the Markdown results document (default docs/RESULTS.md)
#   BUILD_PATH   swift build's scratch path for the release build (default .build)
#   ARPO_TRAIN   an arpo-train binary to use instead of building one in release mode
#
# A run directory that has summary.json is skipped and one with a checkpoint is resumed, so an
# interrupted comparison continues where it stopped when the script is run again.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-runs/compare}
SEEDS=${SEEDS:-0 1 2}
CONFIGS_DIR=${CONFIGS_DIR:-configs}
RESULTS=${RESULTS:-docs/RESULTS.md}
BUILD_PATH=${BUILD_PATH:-.build}
ALGORITHMS=(grpo ppo arpo)

# The command that reproduces this comparison: the script with the settings that differ from
# the defaults. It is quoted in the results document.
reproduce=scripts/compare.sh
[ "$RESULTS" != docs/RESULTS.md ] && reproduce="RESULTS=$RESULTS $reproduce"
[ "$CONFIGS_DIR" != configs ] && reproduce="CONFIGS_DIR=$CONFIGS_DIR $reproduce"
[ "$SEEDS" != "0 1 2" ] && reproduce="SEEDS=\"$SEEDS\" $reproduce"
[ "$OUT" != runs/compare ] && reproduce="OUT=$OUT $reproduce"

for algorithm in "${ALGORITHMS[@]}"; do
    if [ ! -f "$CONFIGS_DIR/$algorithm.json" ]; then
        echo "error: $CONFIGS_DIR/$algorithm.json not found (CONFIGS_DIR=$CONFIGS_DIR)" >&2
        exit 2
    fi
done

scripts/bootstrap.sh
if [ -z "${ARPO_TRAIN:-}" ]; then
    swift build -c release --scratch-path "$BUILD_PATH" --product arpo-train
    ARPO_TRAIN=$(swift build -c release --scratch-path "$BUILD_PATH" --show-bin-path)/arpo-train
fi

started=$SECONDS
mkdir -p "$OUT"

duration() {
    local seconds=$1
    if [ "$seconds" -ge 60 ]; then printf '%dm%02ds' $((seconds / 60)) $((seconds % 60)); else printf '%ds' "$seconds"; fi
}

# train NAME ARGUMENTS...: one run into $OUT/NAME, its output in $OUT/NAME.log, and one line
# with its result and wall time. Skipped when finished; resumed from its latest checkpoint.
train() {
    local name=$1
    shift
    local directory=$OUT/$name
    if [ -f "$directory/summary.json" ]; then
        echo "$name: already finished, skipped"
        return
    fi
    local resume=()
    [ -f "$directory/checkpoints/latest" ] && resume=(--resume)
    local run_started=$SECONDS
    local status=0
    "$ARPO_TRAIN" "$@" --output "$directory" --quiet "${resume[@]}" >"$OUT/$name.log" 2>&1 || status=$?
    if [ "$status" -ne 0 ]; then
        echo "error: $name stopped with exit code $status (130 or 143: interrupted, and the next run of this script resumes it); its output is in $OUT/$name.log" >&2
        tail -n 5 "$OUT/$name.log" >&2
        exit 1
    fi
    if [ ! -f "$directory/summary.json" ]; then
        # Only a run stopped between its last checkpoint and its summary gets here.
        echo "error: $name ended without writing $directory/summary.json; remove $directory and run again" >&2
        exit 1
    fi
    local result
    result=$(grep '^Held-out accuracy' "$OUT/$name.log" | tail -n 1 || true)
    echo "$name: $(duration $((SECONDS - run_started)))${resume:+ (resumed)}  ${result#Held-out accuracy: }"
}

# (a) One cold start, shared by every run: SFT and the post-SFT evaluation, no RL. The ARPO
# config's model has no value head; PPO runs add a fresh one (sft.init_from).
train cold-start --config "$CONFIGS_DIR/arpo.json" --set rl.steps=0

# (b) Each algorithm and seed from the cold start's reference policy, without SFT of their own.
runs=()
for algorithm in "${ALGORITHMS[@]}"; do
    for seed in $SEEDS; do
        train "$algorithm-seed$seed" --config "$CONFIGS_DIR/$algorithm.json" \
            --set sft.steps=0 --set sft.init_from="$OUT/cold-start/reference" --set run.seed="$seed"
        runs+=("$OUT/$algorithm-seed$seed")
    done
done

# (c) The report and the results document, both from the runs' outputs.
mkdir -p "$(dirname "$RESULTS")"
"$ARPO_TRAIN" report "${runs[@]}" --output "$OUT/report.html" --markdown "$RESULTS" --command "$reproduce"
echo "Total wall time: $(duration $((SECONDS - started)))"
