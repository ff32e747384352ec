#!/usr/bin/env bash
# Regenerates book/src/output/*.txt: every program output the book shows comes
# from a real run made here. Run from anywhere: scripts/regen-output.sh
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet --bin uring-book --examples
bin=target/debug/uring-book
examples=target/debug/examples
out=book/src/output
mkdir -p "$out"

# Breaks a long command line the way a person would, with `\`, so that it fits
# the book's 90 columns.
fit_page() {
    awk '{
        line = ""
        for (i = 1; i <= NF; i++) {
            if (line != "" && length(line) + 1 + length($i) > 86) {
                print line " \\"
                line = "   "
            }
            line = (line == "" ? $i : line " " $i)
        }
        print line
    }'
}

# capture NAME ok|fail CMD...: runs CMD and writes "$ CMD" (with the binary
# shown as `cargo run --`), then its stdout and stderr, to $out/NAME.txt.
# `ok` requires success; `fail` requires a failure, whose status is appended.
capture() {
    local name=$1 want=$2 status=0
    shift 2
    local shown="$*"
    {
        shown=${shown//$bin/cargo run --}
        shown=${shown//$examples\//cargo run --example }
        # Keep `cargo run --` together when the line is broken.
        printf '$ %s\n' "${shown//cargo run --/cargo@run@--}" | fit_page | tr @ ' '
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

# --- Chapter 0: the environment ---
capture ch00-ring ok "$examples/ch00_ring"
capture ch00-probe ok "$examples/ch00_probe"
capture doctor ok "$bin" doctor
capture doctor-memlock fail setpriv --inh-caps=-ipc_lock --bounding-set=-ipc_lock \
    prlimit --memlock=65536 "$bin" doctor
capture cli-unknown fail "$bin" 42
if command -v just >/dev/null; then
    capture just-list ok just --list
fi

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
