# uring-book: the container route (Docker) and the same tasks natively.
# `just --list` shows every recipe with the comment above it.

# The container's user gets your uid and gid, so that what it writes in the
# checkout (mounted at /app) is yours; docker-compose.yml reads these.
export URING_BOOK_UID := `id -u`
export URING_BOOK_GID := `id -g`

# Compose v2 (`docker compose`) or v1 (`docker-compose`), whichever is installed.
compose := "docker/compose"

# `exec` allocates a terminal only when there is one: -T in CI or a pipe.
exec := compose + " exec $(test -t 0 || echo -T) dev"

# Build the image and start the dev container in the background
up:
    # The volume for target/ mounts there: made by Docker, it would be root's.
    mkdir -p target
    {{compose}} up --detach --build dev

# Open a shell in the dev container (starts it if needed)
shell: up
    {{exec}} bash

# Stop and remove the dev container (cargo caches stay in volumes)
down:
    {{compose}} down

# Serve the book from the container on http://localhost:3000
serve: up
    {{exec}} mdbook serve --hostname 0.0.0.0 --port 3000

# Run the whole test suite in the container (tests, book, links)
test: up
    {{exec}} just test-host

# Run the whole test suite on this machine (Linux with io_uring)
test-host:
    cargo test
    mdbook build
    python3 scripts/check-links.py book/build
    python3 scripts/check-container.py

# Run exercise N in the container; servers 5 and 8 on port 7878
run N *ARGS: up
    {{exec}} cargo run -- {{N}} {{ if N =~ '^[58]$' { if ARGS =~ '--addr' { "" } else { "--addr 0.0.0.0:7878" } } else { "" } }} {{ARGS}}

# Check that the container can run io_uring and every chapter
doctor: up
    {{exec}} cargo run -- doctor

# The doctor under Docker's default seccomp profile instead of ours
doctor-default: up
    docker run --rm --init --volumes-from "$({{compose}} ps -q dev)" --workdir /app \
        uring-book-dev:uid-{{URING_BOOK_UID}} cargo run --quiet -- doctor

# Regenerate the program output shown in the book (on this machine)
regen-output:
    scripts/regen-output.sh
