#!/usr/bin/env bash
# Regenerates the program output the book shows: book/src/output/<name>.txt.
# Each file starts with the command, as a reader would type it, then its output.
# Run from anywhere: scripts/regen-output.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/uring-book
out=book/src/output
mkdir -p "$out"

# show NAME COMMAND...: writes "$ COMMAND" and what it prints to $out/NAME.txt.
# `cargo run --release --` stands for the binary it runs.
show() {
    local name=$1
    shift
    {
        echo "\$ cargo run --release -- ${*:2}"
        "$@" 2>&1
    } > "$out/$name.txt"
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

# Chapter 4
show ch04-run "$bin" 4

# Chapter 5
show ch05-demo "$bin" 5 --demo

# A server on the default port, a client with nc, then Ctrl-C (SIGINT).
server_log=$(mktemp)
"$bin" 5 > "$server_log" 2>&1 &
server=$!
wait_listening "$server_log"
{
    echo '$ echo "hello io_uring" | nc -N localhost 7878'
    echo "hello io_uring" | nc -N localhost 7878
} > "$out/ch05-nc.txt"
sleep 0.2
kill -INT "$server"
wait "$server"
{
    echo '$ cargo run --release -- 5'
    sed 's/^SIGINT: stopping$/^CSIGINT: stopping/' "$server_log"
} > "$out/ch05-server.txt"

# The load client against a quiet server.
"$bin" 5 --quiet > "$server_log" 2>&1 &
server=$!
wait_listening "$server_log"
show ch05-client-100 "$bin" echo-client --conns 100 --secs 5
show ch05-client-1000 "$bin" echo-client --conns 1000 --secs 5
show ch05-client-1000-mt "$bin" echo-client --conns 1000 --secs 5 --multi-thread
kill -TERM "$server"
wait "$server"

# Out of file descriptors: a server limited to 20 against 15 connections.
prlimit --nofile=20:20 "$bin" 5 --addr 127.0.0.1:7879 --quiet > "$server_log" 2>&1 &
server=$!
wait_listening "$server_log"
show ch05-emfile-client "$bin" echo-client --addr 127.0.0.1:7879 --conns 15 --secs 1
kill -TERM "$server"
wait "$server"
{
    echo '$ prlimit --nofile=20:20 target/release/uring-book 5 --addr 127.0.0.1:7879 --quiet'
    cat "$server_log"
} > "$out/ch05-emfile-server.txt"
rm -f "$server_log"

# Chapter 6: the benchmark's reference run (about four minutes).
scripts/regen-bench.sh
