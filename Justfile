# uring-book: the container route (Docker) and the same tasks natively.
# `just --list` shows every recipe with the comment above it.

compose := "docker compose"

# Build the image and start the dev container in the background
up:
    {{compose}} up --detach --build dev

# Open a shell in the dev container (starts it if needed)
shell: up
    {{compose}} exec dev bash

# Stop and remove the dev container (cargo caches stay in volumes)
down:
    {{compose}} down

# Serve the book from the container on http://localhost:3000
serve: up
    {{compose}} exec dev mdbook serve --hostname 0.0.0.0 --port 3000

# Run the whole test suite in the container (tests, book, links)
test: up
    {{compose}} exec dev just test-host

# Run the whole test suite on this machine (Linux with io_uring)
test-host:
    cargo test
    mdbook build
    python3 scripts/check-links.py book/build
    python3 scripts/check-container.py

# Run exercise N in the container: `just run 1 [ARGS]`
run N *ARGS: up
    {{compose}} exec dev cargo run -- {{N}} {{ARGS}}

# Check that the container can run io_uring and every chapter
doctor: up
    {{compose}} exec dev cargo run -- doctor

# Regenerate the program output shown in the book (on this machine)
regen-output:
    scripts/regen-output.sh
