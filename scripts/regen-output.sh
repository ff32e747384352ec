#!/usr/bin/env bash
# Regenerates every output the book shows: builds once, then runs each shown
# command and writes what it printed to book/src/output/<name>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

# Chapter 6 includes parts of book/src/bench/summary.md, which its run below
# writes. build.rs needs every included part to exist before anything builds,
# so a part the chapter names but the file lacks yet gets a placeholder first;
# the run replaces the whole file.
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

# Chapter 6: the benchmark's help, and the reference run that the chapter's
# tables, charts and numbers come from (JSON, SVG and Markdown in book/src/bench).
# fio and perf are used when installed; the run says so when they are not.
"$bin" 6 --help > "$out/ch06-help.txt"
"$bin" 6 --json book/src/bench/reference.json --plot book/src/bench \
    --summary "$summary" > "$out/ch06-run.txt"
