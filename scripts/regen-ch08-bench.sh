#!/usr/bin/env bash
# Regenerates chapter 8's measurements: book/src/bench/ch08.json and
# ch08-summary.md, from which the chapter takes every number, table and
# verdict, and book/src/output/ch08-bench.txt. Takes about six minutes on 2
# cores; perf is used when installed. Run it on a quiet machine: the
# summary says how busy the machine was.
# Run from anywhere: scripts/regen-ch08-bench.sh (scripts/regen-output.sh
# calls it unless REGEN_BENCH=0). scripts/regen-ch08-bench.sh --render redraws
# the summary and the output from the committed ch08.json without measuring,
# for a change in how the report words them (the JSON keeps its command).
set -euo pipefail
cd "$(dirname "$0")/.."

summary=book/src/bench/ch08-summary.md
mkdir -p book/src/bench book/src/output
cargo build --release --quiet
bin=target/release/uring-book
if [[ ${1:-} == --render ]]; then
    "$bin" 6 --workloads multishot --from-json book/src/bench/ch08.json \
        --summary "$summary" > book/src/output/ch08-bench.txt
    exit
fi
# The command the summary quotes is this one, as `cargo run --release -- 6 ...`.
"$bin" 6 --workloads multishot --json book/src/bench/ch08.json \
    --summary "$summary" > book/src/output/ch08-bench.txt
