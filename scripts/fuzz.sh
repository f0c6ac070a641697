#!/usr/bin/env bash
# Seeded mutation fuzzing of the file readers, for longer than the test suite runs it.
#
#   scripts/fuzz.sh [ITERATIONS [SEED [FORMAT...]]]
#
# ITERATIONS mutated inputs per format (default 5000) from SEED (default: the date, printed so a
# run can be repeated), for the formats of Tests/PatchworkTests/FuzzTests.swift (default: all of
# Safetensors PNG JPEG BMP IDXImages IDXLabels GzipIDX CIFAR10 CIFAR100 TorchCheckpoint). Each format runs in a child
# process (the release test binary), under `timeout` and `/usr/bin/time -v`: when the child dies of
# a signal or hangs, the input it was trying is kept as
# Tests/PatchworkTests/Fixtures/fuzz-regressions/<format>--seed<SEED>-case<N>.bin (replayed by
# FuzzTests.testKeptRegressionInputs from then on) and the format resumes at the next case.
# Prints, per format: inputs tried, loaded, clean errors, crashes, hangs and the child's peak RSS.
# Exits 1 when anything crashed, hung or failed a check.
#
#   scripts/fuzz.sh replay FORMAT FILE...
#
# Loads each FILE as FORMAT (safetensors, png, jpeg, bmp, idx_images, idx_labels, idx_images_gz,
# cifar10, cifar100, torch) in its own child process and prints the outcome and the child's peak RSS.
set -uo pipefail
cd "$(dirname "$0")/.."

test_binary() { find .build/release/ -maxdepth 1 -name '*PackageTests.xctest' | head -n 1; }

if [ "${1:-}" = replay ]; then
    [ $# -ge 3 ] || { echo "usage: scripts/fuzz.sh replay FORMAT FILE..." >&2; exit 2; }
    format=$2; shift 2
    binary=$(test_binary)
    [ -x "$binary" ] || { echo "fuzz.sh: no test binary in .build/release (run swift test -c release first)" >&2; exit 1; }
    for file in "$@"; do
        out=$(FUZZ_REPLAY_FORMAT=$format FUZZ_REPLAY_FILE=$(realpath "$file") timeout 120 /usr/bin/time -f 'peak RSS %M KB, %e s' \
            "$binary" PatchworkTests.FuzzTests/testReplayFromEnvironment 2>&1); rc=$?
        echo "$(echo "$out" | grep '^replay ' | head -n 1)"
        echo "  exit $rc, $(echo "$out" | grep 'peak RSS' | tail -n 1)"
    done
    exit 0
fi

iterations=${1:-5000}
seed=${2:-$(date +%Y%m%d)}
shift $(( $# < 2 ? $# : 2 ))
formats=("$@")
[ ${#formats[@]} -eq 0 ] && formats=(Safetensors PNG JPEG BMP IDXImages IDXLabels GzipIDX CIFAR10 CIFAR100 TorchCheckpoint)
hang_seconds=${FUZZ_HANG_SECONDS:-30}   # a case this slow counts as a hang (the suite's own check is 10 s)

# Builds the release test binary as `swift test` does (with testable imports) and replays the kept inputs.
swift test -c release --disable-swift-testing --filter FuzzTests/testKeptRegressionInputs >"${TMPDIR:-/tmp}/fuzz-build-$$.log" 2>&1 \
    || { tail -n 30 "${TMPDIR:-/tmp}/fuzz-build-$$.log" >&2; echo "fuzz.sh: the build or the kept inputs failed" >&2; exit 1; }
rm -f "${TMPDIR:-/tmp}/fuzz-build-$$.log"
binary=$(test_binary)
[ -x "$binary" ] || { echo "fuzz.sh: no test binary in .build/release" >&2; exit 1; }
kept=Tests/PatchworkTests/Fixtures/fuzz-regressions
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "fuzzing $iterations inputs per format, seed $seed"

status=0
for format in "${formats[@]}"; do
    start=0 crashes=0 hangs=0 peak=0
    : > "$work/report"
    while [ "$start" -lt "$iterations" ]; do
        rm -f "$work/current" "$work/current.txt"
        # The whole child gets a generous time; a hang is one case stuck for hang_seconds (watched below).
        FUZZ_ITERATIONS=$iterations FUZZ_SEED=$seed FUZZ_START=$start FUZZ_CURRENT="$work/current" FUZZ_REPORT="$work/report" \
            /usr/bin/time -v -o "$work/time" "$binary" "PatchworkTests.FuzzTests/testFuzz$format" > "$work/log" 2>&1 &
        child=$!
        # Watch the current case: if the file naming it has not changed for hang_seconds, the case hangs.
        last="" same=0 hung=0
        while kill -0 "$child" 2>/dev/null; do
            sleep 1
            now=$(stat -c %Y.%s "$work/current.txt" 2>/dev/null; cat "$work/current.txt" 2>/dev/null)
            if [ "$now" = "$last" ]; then same=$((same + 1)); else same=0; last=$now; fi
            if [ "$same" -ge "$hang_seconds" ]; then hung=1; pkill -KILL -P "$child" 2>/dev/null; kill -KILL "$child" 2>/dev/null; break; fi
        done
        wait "$child"; rc=$?
        rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time" 2>/dev/null)
        [ -n "$rss" ] && [ "$rss" -gt "$peak" ] && peak=$rss
        if [ "$hung" = 0 ] && [ "$rc" = 0 ]; then break; fi
        # XCTest exits 1 when a check fails; a signal gives 128 + its number (through /usr/bin/time).
        if [ "$hung" = 0 ] && [ "$rc" -lt 128 ]; then
            echo "$format: a check failed:" >&2
            grep "error: " "$work/log" | head -n 20 >&2 || tail -n 20 "$work/log" >&2
            status=1
            break
        fi
        # A crash (signal) or a hang: keep the input and go on after it.
        if [ ! -f "$work/current.txt" ]; then echo "$format: the child failed before its first case:" >&2; tail -n 20 "$work/log" >&2; status=1; break; fi
        label=$(cat "$work/current.txt")
        case_index=$(echo "$label" | sed -n 's/.* case \([0-9]*\) .*/\1/p')
        name=$(echo "$label" | cut -d' ' -f1)
        mkdir -p "$kept"
        cp "$work/current" "$kept/$name--seed$seed-case$case_index.bin"
        if [ "$hung" = 1 ]; then hangs=$((hangs + 1)); what=hang; else crashes=$((crashes + 1)); what="crash (exit $rc)"; fi
        echo "$format: $what on $label; kept as $kept/$name--seed$seed-case$case_index.bin" >&2
        tail -n 5 "$work/log" >&2
        status=1
        start=$((case_index + 1))
    done
    # Loaded and clean-error counts come from the children that finished: after a crash or a
    # hang they add up to less than the inputs tried.
    awk -v f="$format" -v n="$iterations" -v c="$crashes" -v h="$hangs" -v p="$peak" '
        { for (i = 2; i <= NF; i++) { if ($i == "loaded,") loaded += $(i-1); if ($i == "clean") clean += $(i-1) } }
        END { printf "%-12s %6d tried  %6d loaded  %6d clean errors  %d crashes  %d hangs  peak RSS %d MB\n", f, n, loaded, clean, c, h, p / 1024 }
    ' "$work/report"
done
exit $status
