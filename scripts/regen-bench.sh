#!/usr/bin/env bash
# Regenerates chapter 6's reference run: book/src/bench/{reference.json,
# summary.md,*.svg}, from which the chapter takes every number, table and
# chart, and book/src/output/ch06-*.txt. Takes about eight minutes on 2 cores
# (three runs of every point).
# fio and perf are used when installed; the run says so when they are not.
# Run from anywhere: scripts/regen-bench.sh (scripts/regen-output.sh calls it).
# scripts/regen-bench.sh --render redraws everything from the committed records
# without measuring, for a change in how the report words them.
set -euo pipefail
cd "$(dirname "$0")/.."

# The chapter includes parts of summary.md, which the run below writes, and
# build.rs needs every included part to exist before anything builds: a part the
# chapter names but the file lacks yet gets a placeholder; the run replaces all.
summary=book/src/bench/summary.md
mkdir -p book/src/bench
touch "$summary"
grep -o 'bench/summary.md:[A-Za-z0-9_-]*' book/src/ch06-benchmarks.md | cut -d: -f2 |
    sort -u | while read -r anchor; do
        grep -q "ANCHOR: $anchor -->" "$summary" ||
            printf '\n<!-- ANCHOR: %s -->\n(placeholder)\n<!-- ANCHOR_END: %s -->\n' \
                "$anchor" "$anchor" >> "$summary"
    done

cargo build --release --quiet
bin=target/release/uring-book
out=book/src/output
mkdir -p "$out"
{
    echo "\$ cargo run --release -- 6 --help"
    "$bin" 6 --help
} > "$out/ch06-help.txt"
if [[ ${1:-} == --render ]]; then
    # Only re-render the summary, charts and run output from the committed
    # records (after a change to the report's wording), keeping the command
    # that measured them.
    measured=$(sed -n '/<!-- ANCHOR: command -->/{n;p;}' "$summary")
    "$bin" 6 --from-json book/src/bench/reference.json --plot book/src/bench \
        --summary "$summary" > "$out/ch06-run.txt"
    MEASURED=$measured awk '{ print } /<!-- ANCHOR: command -->/ { getline; print ENVIRON["MEASURED"] }' \
        "$summary" > "$summary.new"
    mv "$summary.new" "$summary"
    exit
fi
# The command the summary quotes is this one, as `cargo run --release -- 6 ...`.
"$bin" 6 --json book/src/bench/reference.json --plot book/src/bench \
    --summary "$summary" > "$out/ch06-run.txt"
