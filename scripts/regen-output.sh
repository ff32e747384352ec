#!/usr/bin/env bash
# Regenerates book/src/output/*.txt: every program output the book shows comes
# from a real run made here. Run from anywhere: scripts/regen-output.sh
# Name sections to regenerate only those, for example
# `scripts/regen-output.sh ch07 solutions`; with none, it does them all.
set -euo pipefail
cd "$(dirname "$0")/.."

all_sections="ch00 ch01 ch02 ch03 ch04 ch05 ch07 ch08 solutions bench"
for name in "$@"; do
    if [[ " $all_sections " != *" $name "* ]]; then
        echo "regen-output: no section '$name'; the sections are: $all_sections" >&2
        exit 2
    fi
done
sections=" ${*:-$all_sections} "
# want SECTION: was SECTION asked for?
want() { [[ $sections == *" $1 "* ]]; }

cargo build --quiet --bin uring-book --examples
# Whatever is timed or measured runs in a release build.
cargo build --release --quiet --bin uring-book
rbin=target/release/uring-book
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
        shown=${shown//target\/release\/uring-book/cargo run --release --}
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

# show NAME COMMAND...: like capture, for the release binary, shown as
# `cargo run --release --`.
show() {
    local name=$1
    shift
    {
        echo "\$ cargo run --release -- ${*:2}" | fit_page
        "$@" 2>&1
    } >"$out/$name.txt"
}

# wait_listening FILE: waits for the server's "listening on" line.
wait_listening() {
    for _ in $(seq 100); do
        grep -q '^listening on' "$1" && return 0
        sleep 0.1
    done
    echo "the server did not start: $(cat "$1")" >&2
    return 1
}

# part SRC DST N...: paragraphs N... (separated by blank lines) of output SRC,
# so that a chapter can show each part of a run beside its listing.
part() {
    local src=$1 dst=$2
    shift 2
    awk -v want="$*" 'BEGIN { RS = ""; n = split(want, w, " "); for (i = 1; i <= n; i++) k[w[i]] = 1 }
        (NR in k) { printf "%s%s\n", sep, $0; sep = "\n" }' "$out/$src.txt" >"$out/$dst.txt"
}
# A step that fails below must not leave its server holding the port.
server=
trap '[[ -z $server ]] || kill "$server" 2>/dev/null || true' EXIT

# --- Chapter 0: the environment, and Appendix A: when the kernel says no ---
if want ch00; then
    capture appendix-a-ring ok "$examples/appendix_a_ring"
    capture appendix-a-probe ok "$examples/appendix_a_probe"
    capture doctor ok "$bin" doctor
    capture doctor-memlock fail setpriv --inh-caps=-ipc_lock --bounding-set=-ipc_lock \
        prlimit --memlock=65536 "$bin" doctor
    capture doctor-memlock0 fail setpriv --inh-caps=-ipc_lock --bounding-set=-ipc_lock \
        prlimit --memlock=0 "$bin" doctor
    capture cli-unknown fail "$bin" 42
    if command -v just >/dev/null; then
        capture just-list ok just --list
    fi
fi

# --- Chapters 1-3: the io-uring crate ---
if want ch01; then
    capture ch01-first-read ok "$examples/ch01_first_read"
    capture ch01-read ok "$bin" 1
    capture ch01-raw ok "$bin" 1 --raw
    # The same raw run, drawn: book/src/img/ring-after-{push,enter,reap}.svg.
    "$bin" 1 --raw --svg book/src/img >/dev/null
    capture ch01-enoent fail "$bin" 1 /nonexistent
    capture ch01-eisdir fail "$bin" 1 /tmp
    # A megabyte of zeros at a path that does not change from run to run.
    head -c 1000000 /dev/zero >/tmp/uring-book-zeros
    capture ch01-big ok "$bin" 1 /tmp/uring-book-zeros --buf-size 65536
    rm -f /tmp/uring-book-zeros
fi

if want ch02; then
    capture ch02-run ok "$bin" 2
fi

if want ch03; then
    # Exercise 3 times reads: a debug build would time the debug build.
    capture ch03-run ok target/release/uring-book 3
    capture ch03-memlock fail setpriv --inh-caps=-ipc_lock --bounding-set=-ipc_lock \
        prlimit --memlock=65536 "$bin" 3
    capture ch03-userns fail unshare --user --map-root-user \
        prlimit --memlock=65536 "$bin" 3
fi

# --- Chapter 4: tokio-uring files, run the way the introduction says ---
if want ch04; then
    capture ch04-run ok "$bin" 4
    # The end of that run, from the first dropped read on, shown again in its section.
    sed -n '/^read timed out;/,$p' "$out/ch04-run.txt" >"$out/ch04-dropped.txt"
fi

# --- Chapter 5: tokio-uring echo server (release build: the client measures) ---
if want ch05; then
    show ch05-demo "$rbin" 5 --demo

    # A server on the default port, a client with nc, then Ctrl-C (SIGINT).
    server_log=$(mktemp)
    "$rbin" 5 >"$server_log" 2>&1 &
    server=$!
    wait_listening "$server_log"
    {
        echo '$ echo "hello io_uring" | nc -N localhost 7878'
        echo "hello io_uring" | nc -N localhost 7878
    } >"$out/ch05-nc.txt"
    sleep 0.2
    kill -INT "$server"
    wait "$server"
    server=
    {
        echo '$ cargo run --release -- 5'
        sed 's/^SIGINT: stopping$/^CSIGINT: stopping/' "$server_log"
    } >"$out/ch05-server.txt"

    # The load client against a quiet server.
    "$rbin" 5 --quiet >"$server_log" 2>&1 &
    server=$!
    wait_listening "$server_log"
    show ch05-client-100 "$rbin" echo-client --conns 100 --secs 5
    show ch05-client-1000 "$rbin" echo-client --conns 1000 --secs 5
    show ch05-client-1000-mt "$rbin" echo-client --conns 1000 --secs 5 --multi-thread
    kill -TERM "$server"
    wait "$server"
    server=

    # Out of file descriptors: a server limited to 20 against 15 connections.
    prlimit --nofile=20:20 "$rbin" 5 --addr 127.0.0.1:7879 --quiet >"$server_log" 2>&1 &
    server=$!
    wait_listening "$server_log"
    show ch05-emfile-client "$rbin" echo-client --addr 127.0.0.1:7879 --conns 15 --secs 1
    kill -TERM "$server"
    wait "$server"
    server=
    {
        echo '$ prlimit --nofile=20:20 cargo run --release -- 5 --addr 127.0.0.1:7879 \'
        echo '    --quiet'
        cat "$server_log"
    } >"$out/ch05-emfile-server.txt"
    rm -f "$server_log"
fi

# --- Chapter 7: chains, deadlines and cancellation ---
if want ch07; then
    capture ch07-copy ok "$bin" 7 copy
    capture ch07-copy-enoent fail "$bin" 7 copy /nonexistent /tmp/copy
    echo "some bytes" >/tmp/uring-book-same
    capture ch07-copy-same fail "$bin" 7 copy /tmp/uring-book-same /tmp/uring-book-same
    rm -f /tmp/uring-book-same
    capture ch07-chain ok "$bin" 7 chain
    part ch07-chain ch07-chain-links 1 2 3
    part ch07-chain ch07-chain-pipe 4
    capture ch07-timeout ok "$bin" 7 timeout
    part ch07-timeout ch07-timeout-timers 1
    part ch07-timeout ch07-timeout-link 2
    part ch07-timeout ch07-timeout-wait 3
    capture ch07-cancel ok "$bin" 7 cancel
    part ch07-cancel ch07-cancel-recv 1 2
    part ch07-cancel ch07-cancel-race 3
    part ch07-cancel ch07-cancel-fd 4
    part ch07-cancel ch07-cancel-drop 5 6
    capture ch07-probe ok "$bin" 7 probe
    # Appendix B: the table of features with this machine's column.
    "$bin" 7 probe --appendix >book/src/appendix-opcodes.md
    if [[ ${REGEN_BENCH:-1} == 1 ]]; then
        # A release build: the copy is timed. About a minute.
        capture ch07-bench ok target/release/uring-book 7 bench
    fi
fi

# --- Chapter 8: exercise 8 (release build: the client measures) ---
if want ch08; then
    capture ch08-floor ok "$examples/ch08_floor"
    show ch08-demo "$rbin" 8 --demo
    server_log=$(mktemp)
    "$rbin" 8 --quiet --addr 127.0.0.1:0 >"$server_log" 2>&1 &
    server=$!
    wait_listening "$server_log"
    addr=$(sed -n 's/^listening on //p' "$server_log")
    show ch08-client-1000 "$rbin" echo-client --addr "$addr" --conns 1000 --secs 5
    kill -INT "$server"
    wait "$server"
    server=
    {
        echo '$ cargo run --release -- 8 --quiet --addr 127.0.0.1:0'
        sed 's/^SIGINT: stopping$/^CSIGINT: stopping/' "$server_log"
    } >"$out/ch08-server.txt"
    rm -f "$server_log"
fi

# --- Solutions to "What to try next" (book/src/solutions.md) ---
if want solutions; then
    # 1.1 and 3.2 time what they do: the release build.
    capture sol-1-1 ok target/release/uring-book solution 1.1
    capture sol-1-2 ok "$bin" solution 1.2
    capture sol-1-3 ok "$bin" solution 1.3
    capture sol-2-1 ok "$bin" solution 2.1
    capture sol-2-2 ok "$bin" solution 2.2
    capture sol-2-3 ok "$bin" solution 2.3
    capture sol-3-1 ok "$bin" solution 3.1
    capture sol-3-2 ok target/release/uring-book solution 3.2
    capture sol-3-2-tmpfs fail "$bin" solution 3.2 --dir /dev/shm
    capture sol-3-3 ok "$bin" solution 3.3
    capture sol-4-1 ok "$bin" solution 4.1
    capture sol-4-2 ok "$bin" solution 4.2
    capture sol-4-3 ok "$bin" solution 4.3
    capture sol-5-1 ok "$bin" solution 5.1
    # 5.2 and chapter 6's solutions measure: the release build.
    capture sol-5-2 ok target/release/uring-book solution 5.2
    capture sol-5-3 ok "$bin" solution 5.3
    capture sol-6-1 ok target/release/uring-book solution 6.1
    capture sol-6-2 ok target/release/uring-book solution 6.2
    capture sol-6-3 ok target/release/uring-book solution 6.3
    capture sol-6-4 ok target/release/uring-book solution 6.4
fi

# Chapters 6 and 8: the benchmarks' reference runs (about eight and six
# minutes). REGEN_BENCH=0 skips them, and chapter 7's timed copy.
if want bench && [[ ${REGEN_BENCH:-1} == 1 ]]; then
    scripts/regen-bench.sh
    scripts/regen-ch08-bench.sh
fi
