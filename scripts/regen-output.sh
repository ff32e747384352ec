#!/usr/bin/env bash
# Regenerates every program output the book shows, from real runs on this
# machine: book/src/output/*.txt. Run it after changing an exercise or a
# listing, and commit the result with the change.
set -euo pipefail
cd "$(dirname "$0")/.."
out=book/src/output
mkdir -p "$out"
cargo build --quiet --examples --bin uring-book
bin=uring-book
# The commands run as shown: the freshly built binary comes first on PATH.
export PATH="$PWD/target/debug:$PWD/target/debug/examples:$PATH"

# Writes the output of a command to $out/$1, with the command line on top.
show() {
    local name=$1 shown=$2
    shift 2
    { echo "\$ $shown"; "$@" 2>&1 || true; } > "$out/$name"
}

# Chapter 0
show ch00-ring.txt "cargo run --example ch00_ring" ch00_ring
show ch00-probe.txt "cargo run --example ch00_probe" ch00_probe
show doctor.txt "cargo run -- doctor" "$bin" doctor
drop_ipc_lock=(setpriv --inh-caps=-ipc_lock --bounding-set=-ipc_lock)
show doctor-memlock.txt "${drop_ipc_lock[*]} \\
    prlimit --memlock=65536 $bin doctor" \
    "${drop_ipc_lock[@]}" prlimit --memlock=65536 "$bin" doctor
show cli-unknown.txt "cargo run -- 42; echo \"exit code \$?\"" \
    bash -c "$bin 42; echo \"exit code \$?\""
if command -v just >/dev/null; then
    show just-list.txt "just --list" just --list
fi
