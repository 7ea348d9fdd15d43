#!/usr/bin/env python3
"""What each checkpoint of a run spends in fsync, from an strace log of that run.

    strace -f --seccomp-bpf -ttt -T -e trace=fsync,rename,mkdir,write -o fsync.trace \
        .build/release/arpo-train --config configs/multiturn.json --set sft.steps=40 \
        --set run.checkpoint_every=2 --set rl.steps=0 --set eval.episodes=8 \
        --output /tmp/fsync-run --quiet
    scripts/checkpoint_fsync_cost.py fsync.trace

A checkpoint (docs/architecture.md, "Durable checkpoints") starts with the fsyncs of
metrics.jsonl and eval.jsonl, encodes its files and their SHA-256 in memory, makes
checkpoints/.step-N.partial-PID, writes and fsyncs each file, renames the directory, and ends
with the fsync of checkpoints/ after `latest` is renamed into place. Per checkpoint this prints
the time of its fsync calls, of the encoding before the first mkdir, and of the whole.
"""
import re
import statistics
import sys

CALL = re.compile(r'(\d+)\s+([\d.]+)\s+(\w+)\((.*)\)\s+=\s+(-?\d+).*<([\d.]+)>')


def main(path):
    events = []  # (start seconds, call, arguments, duration seconds)
    for line in open(path):
        match = CALL.match(line)
        if match:
            _, start, call, arguments, _, duration = match.groups()
            events.append((float(start), call, arguments, float(duration)))
    starts = [i for i, e in enumerate(events) if e[1] == 'mkdir' and re.search(r'\.step-\d+\.partial-\d+",', e[2])]
    if not starts:
        sys.exit(f'{path}: no checkpoint (no mkdir of checkpoints/.step-N.partial-PID)')
    fsyncs, calls, encoding, whole = [], [], [], []
    for start in starts:
        first = start - 1  # the two log fsyncs just before the encoding
        while first > 0 and not (events[first][1] == 'fsync' and events[first - 1][1] == 'fsync'):
            first -= 1
        first -= 1
        end = start
        while not (events[end][1] == 'rename' and events[end][2].endswith('/latest"')):
            end += 1
        end += 1
        while events[end][1] != 'fsync':
            end += 1
        synced = [e for e in events[first:end + 1] if e[1] == 'fsync']
        fsyncs.append(sum(e[3] for e in synced))
        calls.append(len(synced))
        encoding.append(events[start][0] - (events[start - 1][0] + events[start - 1][3]))
        whole.append(events[end][0] + events[end][3] - events[first][0])
    print(f'{len(starts)} checkpoints, {min(calls)}-{max(calls)} fsync calls each')
    print('per checkpoint (ms)       best   median    worst')
    for name, values in [('fsync calls', fsyncs), ('encoding and SHA-256', encoding), ('whole checkpoint', whole)]:
        values = sorted(v * 1000 for v in values)
        print(f'{name:22} {values[0]:8.1f} {statistics.median(values):8.1f} {values[-1]:8.1f}')


if __name__ == '__main__':
    if len(sys.argv) != 2:
        sys.exit('usage: checkpoint_fsync_cost.py STRACE_LOG')
    main(sys.argv[1])
