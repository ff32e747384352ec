#!/usr/bin/env bash
# Regenerates book/src/output/*.txt: every program output the book shows comes
# from a real run made here. Run from anywhere: scripts/regen-output.sh
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet
bin=target/debug/uring-book
out=book/src/output
mkdir -p "$out"

# capture NAME ok|fail CMD...: runs CMD and writes "$ CMD" (with the binary
# shown as `cargo run --`), then its stdout and stderr, to $out/NAME.txt.
# `ok` requires success; `fail` requires a failure, whose status is appended.
capture() {
    local name=$1 want=$2 status=0
    shift 2
    local shown="$*"
    {
        printf '$ %s\n' "${shown//$bin/cargo run --}"
        "$@" 2>&1 || status=$?
    } >"$out/$name.txt"
    if [[ $want == ok && $status != 0 ]] || [[ $want == fail && $status == 0 ]]; then
        echo "regen-output: $name: unexpected exit status $status" >&2
        cat "$out/$name.txt" >&2
        exit 1
    fi
    if [[ $status != 0 ]]; then
        echo "(exit status $status)" >>"$out/$name.txt"
    fi
}

# --- Chapters 1-3: the io-uring crate ---
capture ch01-read ok "$bin" 1
capture ch01-raw ok "$bin" 1 --raw
capture ch01-enoent fail "$bin" 1 /nonexistent
capture ch01-eisdir fail "$bin" 1 /tmp
# A megabyte of zeros at a path that does not change from run to run.
head -c 1000000 /dev/zero >/tmp/uring-book-zeros
capture ch01-big ok "$bin" 1 /tmp/uring-book-zeros --buf-size 65536
rm -f /tmp/uring-book-zeros
capture ch02-run ok "$bin" 2
capture ch03-run ok "$bin" 3
capture ch03-memlock fail setpriv --inh-caps=-ipc_lock --bounding-set=-ipc_lock \
    prlimit --memlock=65536 "$bin" 3
capture ch03-userns fail unshare --user --map-root-user \
    prlimit --memlock=65536 "$bin" 3
