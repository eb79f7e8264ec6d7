#!/usr/bin/env bash
# Fuzzes every reader of outside bytes (UnrollIO's FormatReaders: npy, npz, safetensors, png, pgm,
# idx, gzip, csv, model) with libFuzzer and the address sanitizer.
#
#   scripts/fuzz.sh [--seconds N | --runs N] [--seed S] [reader ...]   # default: every reader, 60 s, random seed
#
# Builds Fuzz/ into .build-fuzz (`-sanitize=fuzzer,address`, libFuzzer as a library), seeds each reader's corpus
# (.build-fuzz/corpus/<reader>) from scripts/fuzz_seeds.py, the shipped model and the regression
# files in Tests/UnrollIOTests/Corpus, and runs it for N seconds or N executions with a 10 s timeout
# per input, allocations capped at 512 MB (decoded sizes limited to 64 MiB) and leak detection on.
# A finding (crash, sanitizer report, multi-line error, timeout, leak, allocation past the cap) is
# copied to Tests/UnrollIOTests/Corpus/<reader>-found-<hash>.bin, which FuzzTests replays, and the
# script fails. Prints the executions and the corpus size of every reader.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60 runs=-1 seed=0 readers=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --runs) runs="$2"; seconds=0; shift 2 ;;
        --seed) seed="$2"; shift 2 ;;
        -h|--help) sed -n 2,13p "$0"; exit 0 ;;
        *) readers+=("$1"); shift ;;
    esac
done
[ ${#readers[@]} -gt 0 ] || readers=(npy npz safetensors png pgm idx gzip csv model)

swift build -c release --package-path Fuzz --build-path "$PWD/.build-fuzz" \
    -Xswiftc -sanitize=fuzzer,address 2>&1 | grep -E "error|warning: var|Compiling|Build" | tail -3
binary=.build-fuzz/release/UnrollFuzz
corpus=.build-fuzz/corpus findings=.build-fuzz/findings
rm -rf "$findings" && mkdir -p "$corpus" "$findings"
python3 scripts/fuzz_seeds.py "$corpus" > /dev/null
mkdir -p "$corpus/model" && cp Sources/unroll/Resources/denoise-model.safetensors "$corpus/model/"
for f in Tests/UnrollIOTests/Corpus/*.bin; do
    r=$(basename "$f" | cut -d- -f1); mkdir -p "$corpus/$r"; cp "$f" "$corpus/$r/"
done

export UNROLL_MAX_DECODED_BYTES=$((64 << 20))
failed=0
printf "%-12s %12s %10s %8s  %s\n" reader executions "exec/s" corpus result
for r in "${readers[@]}"; do
    mkdir -p "$corpus/$r" "$findings/$r"
    limit=(-max_total_time="$seconds"); [ "$runs" -ge 0 ] && limit=(-runs="$runs")
    log=".build-fuzz/$r.log"
    set +e
    UNROLL_FUZZ_READER="$r" "$binary" "$corpus/$r" "${limit[@]}" -seed="$seed" -timeout=10 -malloc_limit_mb=512 -rss_limit_mb=2048 \
        -detect_leaks=1 -max_len=65536 -artifact_prefix="$findings/$r/" -print_final_stats=1 > "$log" 2>&1
    status=$?
    set -e
    execs=$(grep -o "stat::number_of_executed_units: *[0-9]*" "$log" | grep -o "[0-9]*$" || echo "?")
    speed=$(grep -o "stat::average_exec_per_sec: *[0-9]*" "$log" | grep -o "[0-9]*$" || echo "?")
    size=$(ls "$corpus/$r" | wc -l)
    result=ok
    if [ $status -ne 0 ] || [ -n "$(ls "$findings/$r")" ]; then
        result="FINDING (exit $status; $log)"
        failed=1
        for f in "$findings/$r"/*; do
            [ -e "$f" ] && cp "$f" "Tests/UnrollIOTests/Corpus/$r-found-$(sha1sum "$f" | cut -c1-12).bin"
        done
    fi
    printf "%-12s %12s %10s %8s  %s\n" "$r" "$execs" "$speed" "$size" "$result"
done
exit $failed
