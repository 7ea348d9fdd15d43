#!/usr/bin/env bash
# Compares RL methods (issue 26 point 3): one cold start (SFT, then the post-SFT evaluation) from
# the base config, then each method, each a set of --set overrides on the base config, from that
# cold start with each seed, then the HTML report and docs/RESULTS.md, both written from the runs'
# outputs. Run from anywhere; paths are relative to the repository root.
#
# Methods:
#   grpo       --set rl.algorithm=grpo
#   ppo        --set rl.algorithm=ppo --set model.value_head=true (the cold start has no value
#              head; sft.init_from adds a fresh one)
#   arpo-soft  --set rl.algorithm=arpo --set rl.advantage.mode=arpo-soft
#   arpo-hard  --set rl.algorithm=arpo --set rl.advantage.mode=arpo-hard
#   arpo-tree  --set rl.algorithm=arpo --set rl.advantage.mode=tree: PORTool's and Tree-GRPO's
#              fork-relative term on the tokens after each fork (docs/algorithms.md §4.4)
#   arpo-dpo   arpo-soft's overrides and --set rl.loss.dpo_coefficient=1: TTPA's DPO term on the
#              ESM-ranked preference pairs at fork points, β 0.1 (§5.6)
#   arpo-bank  arpo-soft's overrides and --set rl.memory_bank.coefficient=0.1: AvaTaR's memory
#              bank of best trajectories, replayed as positive rows (§5.7)
#   arpo-aepo  arpo-soft's overrides and --set rl.branching.rule=entropy-balanced: AEPO's budget
#              split from the prompt's entropy and its consecutive-fork penalty (§3.1)
#   arpo-otc   arpo-soft's overrides and --set env.reward.tool_efficiency=true
#              --set env.reward.tool_efficiency_form=group: ARPO trained on OTC-PO's group-form
#              tool-efficiency reward (docs/algorithms.md §6). Not among the default METHODS; with
#              arpo-soft beside it (METHODS="arpo-soft arpo-otc") the report's tool calls written
#              per answered episode compare the factor on and off.
#
# Before training anything the script checks each method's resolved config (base config, the
# method's overrides, EXTRA) and stops if one does not load, or if:
# - rl.group_size (GRPO's and PPO's G) differs from rl.branching.budget (ARPO's M): every method
#   must roll out the same number of trajectories per prompt;
# - arpo-hard would take one update per rollout batch (rl.epochs × rl.mini_batches = 1), where it
#   gives exactly arpo-soft's gradient (docs/algorithms.md §4.2). EXTRA's default of two
#   mini-batches, given to every method alike, is what makes the two differ.
#
# Environment:
#   CONFIG      the base config (default configs/multiturn.json)
#   METHODS     the methods to run, in report order (default "grpo ppo arpo-soft arpo-hard
#               arpo-tree arpo-dpo arpo-bank arpo-aepo")
#   SEEDS       seeds per method (default "0 1 2 3 4")
#   EXTRA       more arguments for every run, cold start included, after the method's own
#               (default "--set rl.mini_batches=2"; words split on spaces, no quoting)
#   OUT         where the runs go (default runs/compare)
#   RESULTS     the Markdown results document (default docs/RESULTS.md)
#   BUILD_PATH  swift build's scratch path for the release build (default .build)
#   ARPO_TRAIN  an arpo-train binary to use instead of building one in release mode
#   DRY_RUN     1: check every method's config, print the commands the comparison would run
#               (finished runs as skipped, interrupted ones with --resume), and run none
#
# A run directory that has summary.json is skipped and one with a checkpoint is resumed, so an
# interrupted comparison continues where it stopped when the script is run again with the same
# settings.
set -euo pipefail
cd "$(dirname "$0")/.."

CONFIG=${CONFIG:-configs/multiturn.json}
METHODS=${METHODS:-grpo ppo arpo-soft arpo-hard arpo-tree arpo-dpo arpo-bank arpo-aepo}
SEEDS=${SEEDS:-0 1 2 3 4}
EXTRA=${EXTRA-"--set rl.mini_batches=2"}
OUT=${OUT:-runs/compare}
RESULTS=${RESULTS:-docs/RESULTS.md}
BUILD_PATH=${BUILD_PATH:-.build}
DRY_RUN=${DRY_RUN:-}

# method_overrides METHOD: the method's arguments on top of the base config.
method_overrides() {
    case $1 in
        grpo) echo "--set rl.algorithm=grpo" ;;
        ppo) echo "--set rl.algorithm=ppo --set model.value_head=true" ;;
        arpo-soft) echo "--set rl.algorithm=arpo --set rl.advantage.mode=arpo-soft" ;;
        arpo-hard) echo "--set rl.algorithm=arpo --set rl.advantage.mode=arpo-hard" ;;
        arpo-tree) echo "--set rl.algorithm=arpo --set rl.advantage.mode=tree" ;;
        arpo-dpo) echo "--set rl.algorithm=arpo --set rl.advantage.mode=arpo-soft --set rl.loss.dpo_coefficient=1" ;;
        arpo-bank) echo "--set rl.algorithm=arpo --set rl.advantage.mode=arpo-soft --set rl.memory_bank.coefficient=0.1" ;;
        arpo-aepo) echo "--set rl.algorithm=arpo --set rl.advantage.mode=arpo-soft --set rl.branching.rule=entropy-balanced" ;;
        arpo-otc) echo "--set rl.algorithm=arpo --set rl.advantage.mode=arpo-soft --set env.reward.tool_efficiency=true --set env.reward.tool_efficiency_form=group" ;;
        *) return 1 ;;
    esac
}

read -r -a methods <<<"$METHODS"
read -r -a extra <<<"$EXTRA"
if [ ${#methods[@]} -eq 0 ]; then
    echo "error: METHODS is empty" >&2
    exit 2
fi
for method in "${methods[@]}"; do
    if ! method_overrides "$method" >/dev/null; then
        echo "error: unknown method '$method' in METHODS; known: grpo ppo arpo-soft arpo-hard arpo-tree arpo-dpo arpo-bank arpo-aepo arpo-otc" >&2
        exit 2
    fi
done
if [ ! -f "$CONFIG" ]; then
    echo "error: $CONFIG not found (CONFIG=$CONFIG)" >&2
    exit 2
fi

# The command that reproduces this comparison: the script with the settings that differ from
# the defaults. It is quoted in the results document.
reproduce=scripts/compare.sh
[ "$RESULTS" != docs/RESULTS.md ] && reproduce="RESULTS=$RESULTS $reproduce"
[ "$OUT" != runs/compare ] && reproduce="OUT=$OUT $reproduce"
[ "$EXTRA" != "--set rl.mini_batches=2" ] && reproduce="EXTRA=\"$EXTRA\" $reproduce"
[ "$SEEDS" != "0 1 2 3 4" ] && reproduce="SEEDS=\"$SEEDS\" $reproduce"
[ "$METHODS" != "grpo ppo arpo-soft arpo-hard arpo-tree arpo-dpo arpo-bank arpo-aepo" ] && reproduce="METHODS=\"$METHODS\" $reproduce"
[ "$CONFIG" != configs/multiturn.json ] && reproduce="CONFIG=$CONFIG $reproduce"

scripts/bootstrap.sh
if [ -z "${ARPO_TRAIN:-}" ]; then
    swift build -c release --scratch-path "$BUILD_PATH" --product arpo-train
    ARPO_TRAIN=$(swift build -c release --scratch-path "$BUILD_PATH" --show-bin-path)/arpo-train
fi

# setting NAME RESOLVED: the integer value of the key NAME (its last path component) in a
# resolved config as `arpo-train --dry-run` prints it (sorted keys, so `group_size` and
# `branching.budget` are each the only key of their name).
setting() {
    sed -n "s/^ *\"$1\" *: *\([0-9][0-9]*\).*/\1/p" <<<"$2" | head -n 1
}

# Every method's config is checked before anything trains: it must load, and it must give the
# same trajectory budget as every other method, and arpo-hard must take several updates per batch.
for method in "${methods[@]}"; do
    read -r -a overrides <<<"$(method_overrides "$method")"
    if ! resolved=$("$ARPO_TRAIN" --config "$CONFIG" "${overrides[@]}" "${extra[@]}" --dry-run 2>&1); then
        echo "error: method $method: $resolved" >&2
        exit 2
    fi
    group_size=$(setting group_size "$resolved")
    budget=$(setting budget "$resolved")
    if [ -z "$group_size" ] || [ "$group_size" != "$budget" ]; then
        echo "error: method $method: rl.group_size (${group_size:-?}) differs from rl.branching.budget (${budget:-?}), so the methods would not roll out the same number of trajectories per prompt; set both (EXTRA=\"--set rl.group_size=N --set rl.branching.budget=N\")" >&2
        exit 2
    fi
    updates=$(($(setting epochs "$resolved") * $(setting mini_batches "$resolved")))
    if [ "$method" = arpo-hard ] && [ "$updates" -eq 1 ]; then
        echo "error: method arpo-hard: one update per rollout batch (rl.epochs × rl.mini_batches = 1), where arpo-hard gives exactly arpo-soft's gradient (docs/algorithms.md §4.2); give every method several, for example EXTRA=\"--set rl.mini_batches=2\"" >&2
        exit 2
    fi
done

started=$SECONDS
[ -z "$DRY_RUN" ] && mkdir -p "$OUT"

# quoted WORDS...: the words as one shell command line.
quoted() {
    local line
    line=$(printf '%q ' "$@")
    echo "${line% }"
}

duration() {
    local seconds=$1
    if [ "$seconds" -ge 60 ]; then printf '%dm%02ds' $((seconds / 60)) $((seconds % 60)); else printf '%ds' "$seconds"; fi
}

# train NAME ARGUMENTS...: one run into $OUT/NAME, its output in $OUT/NAME.log, and one line
# with its result and wall time. Skipped when finished; resumed from its latest checkpoint.
# Under DRY_RUN, prints the command instead of running it.
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
    local command=("$ARPO_TRAIN" "$@" --output "$directory" --quiet "${resume[@]}")
    if [ -n "$DRY_RUN" ]; then
        echo "$name: $(quoted "${command[@]}")"
        return
    fi
    local run_started=$SECONDS
    local status=0
    "${command[@]}" >"$OUT/$name.log" 2>&1 || status=$?
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

# (a) One cold start, shared by every run: SFT and the post-SFT evaluation, no RL. Its model has
# the base config's value head, if any; PPO runs add a fresh one (sft.init_from).
train cold-start --config "$CONFIG" "${extra[@]}" --set rl.steps=0

# (b) Each method and seed from the cold start's reference policy, without SFT of their own.
runs=()
for method in "${methods[@]}"; do
    read -r -a overrides <<<"$(method_overrides "$method")"
    for seed in $SEEDS; do
        train "$method-seed$seed" --config "$CONFIG" "${overrides[@]}" "${extra[@]}" \
            --set sft.steps=0 --set sft.init_from="$OUT/cold-start/reference" --set run.seed="$seed"
        runs+=("$OUT/$method-seed$seed")
    done
done

# (c) The report and the results document, both from the runs' outputs.
report=("$ARPO_TRAIN" report "${runs[@]}" --output "$OUT/report.html" --markdown "$RESULTS" --command "$reproduce")
if [ -n "$DRY_RUN" ]; then
    echo "report: $(quoted "${report[@]}")"
    exit 0
fi
mkdir -p "$(dirname "$RESULTS")"
"${report[@]}"
echo "Total wall time: $(duration $((SECONDS - started)))"
