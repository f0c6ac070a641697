#!/usr/bin/env bash
# Kill -9 at random moments, resume, and check the result (issue 19, "Runs").
#
#   scripts/kill-resume.sh [TRIALS] [SEED]      (defaults: 20 trials, seed 1)
#
# Trains resnet_nano on a small ShapeTex once without interruption (the
# reference), then TRIALS times: starts the same run, kills it with SIGKILL
# after a random delay (during start-up, the first epoch, a step checkpoint's
# write, an evaluation, ...), and resumes it (killing the resumed runs too,
# until one finishes; a run killed before its first checkpoint starts afresh).
# Checks for every trial:
#   - weights.safetensors is byte-identical to the reference's;
#   - metrics.jsonl has each epoch exactly once, with the reference's numbers;
#   - no temporary file (.*.tmp-*) is left in the folder.
# Prints how many kills hit a checkpoint write (a temporary file was left).
# Needs the release build (swift build -c release). Takes a few minutes, so it
# is not part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
TRIALS=${1:-20}
RANDOM=${2:-1}
BIN=.build/release/patchwork
[ -x "$BIN" ] || { echo "build first: swift build -c release" >&2; exit 2; }
WORK=$(mktemp -d /tmp/kill-resume.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
ARGS=(--model resnet_nano --data shapetex:size=16,train=192,test=32 --img-size 16 --epochs 3 --batch-size 32
      --checkpoint-every 2 --seed 5)

start=$(date +%s.%N)
"$BIN" train "${ARGS[@]}" --out "$WORK/reference" > "$WORK/reference.log"
reference_ms=$(python3 -c "import sys; print(int((float(sys.argv[2]) - float(sys.argv[1])) * 1000))" "$start" "$(date +%s.%N)")
echo "reference run: ${reference_ms} ms"

# The metrics of a run without its timings, one line per epoch.
numbers() {
    python3 - "$1" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    print(json.dumps({k: v for k, v in m.items() if k not in ("seconds", "images_per_second")}, sort_keys=True))
EOF
}
numbers "$WORK/reference/metrics.jsonl" > "$WORK/reference.numbers"

kills=0; in_write=0; fresh_starts=0; failures=0
for trial in $(seq 1 "$TRIALS"); do
    out="$WORK/run$trial"
    resume=()
    attempt=0
    while :; do
        attempt=$((attempt + 1))
        "$BIN" train "${ARGS[@]}" --out "$out" "${resume[@]}" > "$out.log.$attempt" 2>&1 &
        pid=$!
        # Up to 4 kills per trial. Trials take turns: a kill after a random part of the reference
        # run's time; one early in the first epoch (the first tenth); one while a file is being
        # written (as soon as a temporary file appears, after a random number of writes).
        if [ "$attempt" -le 4 ]; then
            case $((trial % 3)) in
                0) delay_ms=$((RANDOM % (reference_ms + 1))) ;;
                1) delay_ms=$((RANDOM % (reference_ms / 10 + 1))) ;;
                2) delay_ms=-1 ;;
            esac
            if [ "$delay_ms" -ge 0 ]; then
                sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
            else
                writes=$((RANDOM % 6))
                shopt -s nullglob dotglob
                while kill -0 "$pid" 2>/dev/null; do
                    temporaries=("$out"/.*.tmp-*)
                    if [ ${#temporaries[@]} -gt 0 ]; then
                        [ "$writes" -eq 0 ] && break
                        writes=$((writes - 1))
                        while [ -e "${temporaries[0]}" ]; do :; done
                    fi
                done
                shopt -u nullglob dotglob
            fi
            if kill -9 "$pid" 2>/dev/null; then
                wait "$pid" 2>/dev/null || true
                kills=$((kills + 1))
                if ls -a "$out" 2>/dev/null | grep -q '\.tmp-'; then in_write=$((in_write + 1)); fi
                if [ -f "$out/checkpoint.safetensors" ]; then resume=(--resume); else resume=(); fresh_starts=$((fresh_starts + 1)); fi
                continue
            fi
        fi
        if ! wait "$pid"; then
            echo "trial $trial: attempt $attempt failed:"; tail -3 "$out.log.$attempt"; failures=$((failures + 1)); break
        fi
        break
    done
    [ -f "$out/weights.safetensors" ] || { echo "trial $trial: no weights"; failures=$((failures + 1)); continue; }
    if ! cmp -s "$out/weights.safetensors" "$WORK/reference/weights.safetensors"; then
        echo "trial $trial: weights differ from the reference"; failures=$((failures + 1))
    fi
    if ! numbers "$out/metrics.jsonl" | cmp -s - "$WORK/reference.numbers"; then
        echo "trial $trial: metrics.jsonl differs (epochs: $(python3 -c "import json,sys; print([json.loads(l)['epoch'] for l in open(sys.argv[1])])" "$out/metrics.jsonl"))"
        failures=$((failures + 1))
    fi
    if ls -a "$out" | grep -q '\.tmp-'; then echo "trial $trial: temporary files left"; failures=$((failures + 1)); fi
done
echo "$TRIALS trials, $kills kills ($in_write during a file write, $fresh_starts before the first checkpoint): $failures failures"
[ "$failures" -eq 0 ]
