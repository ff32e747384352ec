# The uring-book development image: Rust, liburing, mdBook and just.
# Used through docker-compose.yml (`just up`, `just test`); io_uring needs the
# seccomp profile that compose passes, because Docker's default refuses it.
FROM rust:1-bookworm

# A development image follows Debian's current packages; pinning them would
# only make the build fail when bookworm updates one.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends \
        liburing-dev util-linux netcat-openbsd python3 python3-yaml fio \
    && rm -rf /var/lib/apt/lists/*

# The same versions the project is tested with.
RUN cargo install --locked mdbook@0.5.4 just@1.59.0 \
    && rm -rf /usr/local/cargo/registry

RUN rustup component add rustfmt clippy

# Work as an ordinary user, as readers do: without CAP_IPC_LOCK, registered
# buffers are charged to RLIMIT_MEMLOCK (compose raises it). The cache
# directories exist before the volumes are mounted on them, so the volumes
# start out owned by this user.
ARG UID=1000
RUN useradd --create-home --uid "$UID" dev \
    && mkdir -p /usr/local/cargo/registry /app/target \
    && chown -R dev:dev /usr/local/cargo/registry /app
USER ${UID}:${UID}
WORKDIR /app

EXPOSE 7878 3000
CMD ["sleep", "infinity"]
