#!/usr/bin/env bash
# Regenerates every output the book shows: builds once, then runs each shown
# command and writes what it printed to book/src/output/<name>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/uring-book
out=book/src/output
mkdir -p "$out"

# Chapter 6: the benchmark's help, and the reference run that the chapter's
# tables, charts and numbers come from (JSON, SVG and Markdown in book/src/bench).
"$bin" 6 --help > "$out/ch06-help.txt"
mkdir -p book/src/bench
"$bin" 6 --json book/src/bench/reference.json --plot book/src/bench \
    --summary book/src/bench/summary.md > "$out/ch06-run.txt"
