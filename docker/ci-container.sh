#!/usr/bin/env bash
# The container route end to end, as a reader with Docker takes it. .ci/run
# calls this after the native suite; run it as root on Linux.
#
#  1. A Docker engine and Compose: Debian's docker.io and docker-compose when
#     missing, dockerd started when none answers (and stopped at the end).
#  2. The base image rust:1-bookworm: pulled, or built locally by
#     docker/build-base-image.sh where no registry answers.
#  3. In this checkout, as root: `just test`, `just doctor`,
#     `just doctor-default`, `just run 5` answering the host through the
#     published port, `just shell`, `just serve`, `just down`.
#  4. In a copy owned by uid 1234 (neither root nor 1000), as that user:
#     `just test`, after which every file in the copy must still be theirs.
#  5. `just regen-output` without the benchmark, on the host. It runs while
#     the base image builds (which waits mostly on the network and the disk),
#     and must end before the container publishes port 7878, which it uses.
#
# The container gets the resource limits this machine allows (a daemon
# without CAP_SYS_RESOURCE cannot raise its own hard limits): URING_BOOK_MEMLOCK
# and URING_BOOK_NOFILE default to this shell's hard limits. TLS proxy CA
# certificates in /usr/local/share/ca-certificates go into the image build
# (docker/ca-certificates/README.md). Every long step has a time limit, and a
# failure names its step and shows the end of its log.
set -euo pipefail
cd "$(dirname "$0")/.."
checkout=$PWD
started=$(date +%s)
logs=$(mktemp -d /tmp/uring-book-container.XXXXXX)
other_uid=1234

fail() {
    echo "container route: $*" >&2
    exit 1
}

# step NAME SECONDS COMMAND...: runs COMMAND with a time limit, its output in
# $logs/NAME.log; on failure, shows the end of that log and stops.
step() {
    local name=$1 limit=$2 status=0 t0
    shift 2
    t0=$(date +%s)
    echo "== container: $name"
    timeout --kill-after=30 "$limit" "$@" >"$logs/$name.log" 2>&1 || status=$?
    if [[ $status != 0 ]]; then
        tail -n 80 "$logs/$name.log" >&2
        [[ $status == 124 ]] && fail "$name: not done within $limit s (log above)"
        fail "$name failed with exit status $status (log above)"
    fi
    echo "   $(($(date +%s) - t0)) s"
}

# expect NAME TEXT: the log of step NAME must contain TEXT.
expect() {
    grep -qF -- "$2" "$logs/$1.log" || {
        cat "$logs/$1.log" >&2
        fail "$1: the output above lacks \"$2\""
    }
}

# wait_for SECONDS COMMAND...: retries COMMAND every second until it succeeds.
wait_for() {
    local deadline=$(($(date +%s) + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        (($(date +%s) < deadline)) || return 1
        sleep 1
    done
}

# apt_install PACKAGE...: installs Debian packages, updating the lists once.
apt_updated=
apt_install() {
    [[ -n $apt_updated ]] || step apt-update 300 apt-get update
    apt_updated=1
    step "install-$1" 600 env DEBIAN_FRONTEND=noninteractive \
        apt-get install --yes --no-install-recommends "$@"
}

[[ $(id -u) == 0 ]] || fail "run as root: it may install packages and start dockerd"

# --- What this script starts, it stops -------------------------------------
dockerd_pid=
background=()
created_user=
copy=
added_certs=()
cleanup() {
    local status=$?
    set +e
    for pid in "${background[@]}"; do kill "$pid" 2>/dev/null; done
    if docker info >/dev/null 2>&1; then
        timeout 180 docker/compose down --volumes --timeout 5 >/dev/null 2>&1
        if [[ -n $copy && -d $copy ]]; then
            (cd "$copy" && timeout 180 docker/compose down --volumes --timeout 5 >/dev/null 2>&1)
        fi
    fi
    [[ -n $copy ]] && rm -rf "$copy"
    [[ -n $created_user ]] && userdel --remove "$created_user" 2>/dev/null
    for cert in "${added_certs[@]}"; do rm -f "$cert"; done
    if [[ -n $dockerd_pid ]]; then
        kill "$dockerd_pid" 2>/dev/null
        for _ in $(seq 60); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 1; done
        kill -9 "$dockerd_pid" 2>/dev/null
        echo "== container: stopped the dockerd this script started"
    fi
    rm -rf "$logs"
    exit "$status"
}
trap cleanup EXIT

# --- 1. Engine and Compose --------------------------------------------------
need_packages=()
command -v dockerd >/dev/null || need_packages+=(docker.io)
if ! docker/compose version >/dev/null 2>&1; then need_packages+=(docker-compose); fi
((${#need_packages[@]})) && apt_install "${need_packages[@]}"
if ! docker info >/dev/null 2>&1; then
    echo "== container: starting dockerd"
    dockerd >"$logs/dockerd.log" 2>&1 &
    dockerd_pid=$!
    wait_for 60 docker info || {
        tail -n 40 "$logs/dockerd.log" >&2
        fail "dockerd did not answer within 60 s (log above)"
    }
fi
engine=$(docker version --format '{{.Server.Version}}')
echo "   Docker Engine $engine, $(docker/compose version | head -n 1)"

# --- 5, started early: the one recipe that runs on the host ------------------
command -v nc >/dev/null || apt_install netcat-openbsd
echo "== container: regen-output, on the host, in the background"
regen_started=$(date +%s)
REGEN_BENCH=0 timeout --kill-after=30 1200 just regen-output >"$logs/regen-output.log" 2>&1 &
regen_pid=$!
background+=("$regen_pid")

# --- 2. The base image ------------------------------------------------------
if ! docker image inspect rust:1-bookworm >/dev/null 2>&1; then
    if ! timeout 120 docker pull --quiet rust:1-bookworm >"$logs/pull.log" 2>&1; then
        echo "   no registry answers ($(tail -n 1 "$logs/pull.log")): building it locally"
        command -v debootstrap >/dev/null || apt_install debootstrap
        step base-image 1200 docker/build-base-image.sh rust:1-bookworm
    fi
fi

# --- Settings for this machine ----------------------------------------------
for cert in /usr/local/share/ca-certificates/*.crt; do
    [[ -f $cert ]] || continue
    target="docker/ca-certificates/$(basename "$cert")"
    if [[ ! -e $target ]]; then
        cp "$cert" "$target"
        added_certs+=("$checkout/$target")
    fi
done
((${#added_certs[@]})) && echo "   extra CA certificates for the build: ${added_certs[*]##*/}"
hard_memlock=$(ulimit -Hl)
if [[ $hard_memlock == unlimited ]]; then default_memlock=-1; else default_memlock=$((hard_memlock * 1024)); fi
hard_nofile=$(ulimit -Hn)
if [[ $hard_nofile == unlimited ]] || ((hard_nofile > 65536)); then hard_nofile=65536; fi
export URING_BOOK_MEMLOCK=${URING_BOOK_MEMLOCK:-$default_memlock}
export URING_BOOK_NOFILE=${URING_BOOK_NOFILE:-$hard_nofile}
echo "   limits for the container: memlock $URING_BOOK_MEMLOCK bytes, nofile $URING_BOOK_NOFILE"
echo_port=${URING_BOOK_ECHO_PORT:-7878}
book_port=${URING_BOOK_BOOK_PORT:-3000}

# The container's `cargo test` has no closing line of its own here: add it up.
summarize_tests() {
    awk '/^test result:/ { p += $4; f += $6 } END { printf "container: %d passed, %d failed\n", p, f }' \
        "$logs/$1.log"
}

# regen-output's servers use port 7878, which the container is about to take.
echo "== container: waiting for regen-output"
regen_status=0
wait "$regen_pid" || regen_status=$?
if [[ $regen_status != 0 ]]; then
    tail -n 60 "$logs/regen-output.log" >&2
    [[ $regen_status == 124 ]] && fail "regen-output: not done within 1200 s (log above)"
    fail "regen-output failed with exit status $regen_status (log above)"
fi
echo "   $(($(date +%s) - regen_started)) s since it started;" \
    "regenerated $(find book/src/output -name '*.txt' | wc -l) output files"

# --- 3. The reader's route, as root in this checkout -------------------------
step up 1200 just up
step test 2400 just test
expect test "container setup: 0 problems"
summarize_tests test

step doctor 600 just doctor
expect doctor "ok    seccomp            2: a filter is active"
expect doctor "ok    io_uring_setup"
expect doctor "Everything the book needs is here."
grep -E "RLIMIT_(MEMLOCK|NOFILE)" "$logs/doctor.log" | sed 's/^/   /'

# Docker's own default profile refuses io_uring since 25.0; older engines allow it.
echo "== container: doctor-default"
status=0
timeout 600 just doctor-default >"$logs/doctor-default.log" 2>&1 || status=$?
if ((${engine%%.*} >= 25)); then
    [[ $status == 1 ]] || { cat "$logs/doctor-default.log" >&2; fail "doctor-default: want exit 1, got $status"; }
    expect doctor-default "FAIL  io_uring_setup     failed with EPERM"
    expect doctor-default "a seccomp filter blocks io_uring"
    echo "   Docker's default profile refuses io_uring, and doctor says so"
else
    [[ $status == 0 || $status == 1 ]] || { cat "$logs/doctor-default.log" >&2; fail "doctor-default: exit $status"; }
    echo "   skipped: Docker Engine $engine predates 25.0, whose default seccomp profile" \
        "refuses io_uring; under this one's default, doctor exits $status:"
    grep -E "io_uring_setup" "$logs/doctor-default.log" | sed 's/^/   /'
fi

echo "== container: run 5, answered from the host on 127.0.0.1:$echo_port"
just run 5 >"$logs/run5.log" 2>&1 &
background+=($!)
wait_for 600 grep -q "^listening on" "$logs/run5.log" || {
    cat "$logs/run5.log" >&2
    fail "run 5: the server did not say it was listening within 600 s"
}
python3 - "$echo_port" <<'EOF' || fail "run 5: no echo through the published port"
import socket, sys
message = b"hello from the host, through the published port\n" * 100
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10) as conn:
    conn.sendall(message)
    conn.shutdown(socket.SHUT_WR)
    echoed = b""
    while chunk := conn.recv(65536):
        echoed += chunk
assert echoed == message, f"sent {len(message)} bytes, got back {len(echoed)}"
print(f"   {len(echoed)} bytes echoed")
EOF
timeout 60 docker/compose exec -T dev pkill -TERM -x uring-book
wait_for 60 bash -c "! kill -0 ${background[-1]}" || fail "run 5: the server did not stop on SIGTERM"
sed 's/^/   /' "$logs/run5.log" | grep -v "Compiling\|Finished\|Running" | tail -n 3

step shell 120 bash -c 'echo "echo uid=\$(id -u) gid=\$(id -g)" | just shell'
expect shell "uid=$(id -u) gid=$(id -g)"

echo "== container: serve, read from the host on 127.0.0.1:$book_port"
just serve >"$logs/serve.log" 2>&1 &
background+=($!)
page=$logs/index.html
fetch="import sys, urllib.request; sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1], timeout=5).read())"
wait_for 300 bash -c 'python3 -c "$1" "$2" >"$3"' _ "$fetch" "http://127.0.0.1:$book_port/" "$page" || {
    cat "$logs/serve.log" >&2
    fail "serve: no page on port $book_port within 300 s"
}
grep -q "Chapter 0" "$page" || fail "serve: the page has no Chapter 0"
echo "   the book's first page: $(wc -c <"$page") bytes"
timeout 60 docker/compose exec -T dev pkill -TERM -x mdbook
wait_for 60 bash -c "! kill -0 ${background[-1]}" || fail "serve: mdbook did not stop on SIGTERM"

step down 180 just down
[[ -z $(docker/compose ps -q) ]] || fail "down: a container is still running"

# --- 4. Another user's checkout ---------------------------------------------
user=$(getent passwd "$other_uid" | cut -d: -f1 || true)
if [[ -z $user ]]; then
    user=uring-book-ci
    useradd --uid "$other_uid" --user-group --create-home "$user"
    created_user=$user
fi
getent group docker >/dev/null && usermod --append --groups docker "$user"
copy=$(mktemp -d /var/tmp/uring-book-uid$other_uid.XXXXXX)
tar --exclude=./target --exclude=./book/build -cf - . | tar -C "$copy" -xf -
mkdir "$copy/.tools"
cp "$(readlink -f "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/just")" \
    "$copy/.tools/just" 2>/dev/null || cp "$(readlink -f "$(command -v just)")" "$copy/.tools/just"
chown -R "$other_uid:$(id -g "$user")" "$copy"
chmod 755 "$copy"
as_user=(runuser -u "$user" -- env --chdir="$copy" HOME="$(getent passwd "$user" | cut -d: -f6)"
    PATH="$copy/.tools:/usr/local/bin:/usr/bin:/bin" URING_BOOK_MEMLOCK="$URING_BOOK_MEMLOCK"
    URING_BOOK_NOFILE="$URING_BOOK_NOFILE")
step test-uid$other_uid 2400 "${as_user[@]}" just test
expect test-uid$other_uid "container setup: 0 problems"
summarize_tests test-uid$other_uid
foreign=$(find "$copy" ! -user "$other_uid" | head -n 5)
[[ -z $foreign ]] || fail "files in uid $other_uid's checkout that are not theirs: $foreign"
echo "   every file in the checkout still belongs to uid $other_uid"
step down-uid$other_uid 180 "${as_user[@]}" just down

echo "== container route done in $(($(date +%s) - started)) s"
