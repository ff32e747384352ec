#!/usr/bin/env bash
# Builds a local stand-in for the `rust:1-bookworm` image, for a machine that
# can reach Debian's package mirror but no image registry (Docker Hub).
#
#   sudo docker/build-base-image.sh [TAG]        # TAG defaults to rust:1-bookworm
#
# The Dockerfile stays what a reader with Docker Hub uses; this script only
# makes its FROM line resolvable offline. It lays the image out as the
# official one does (github.com/rust-lang/docker-rust): Debian bookworm,
# rustup in RUSTUP_HOME=/usr/local/rustup, the proxies (cargo, rustc, ...) in
# CARGO_HOME=/usr/local/cargo/bin, both writable by every user, and
# RUST_VERSION set. The toolchain is this host's `rustc`, copied without its
# HTML documentation; it keeps rustfmt and clippy if the host has them, so the
# Dockerfile's `rustup component add rustfmt clippy` needs no download. The
# official image starts from buildpack-deps:bookworm, which has many more
# -dev packages; this one has the few that a Rust build needs.
#
# Needs root (debootstrap), debootstrap, docker, and a host rustup toolchain
# for x86_64 or aarch64. DEBIAN_MIRROR overrides the mirror.
set -euo pipefail

tag="${1:-rust:1-bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
packages=ca-certificates,curl,git,gcc,libc6-dev,make,pkg-config,procps,xz-utils,netbase

die() {
    echo "build-base-image: $*" >&2
    exit 1
}

[ "$(id -u)" = 0 ] || die "run as root: debootstrap needs it"
command -v debootstrap >/dev/null || die "debootstrap is missing (Debian: apt-get install debootstrap)"
command -v docker >/dev/null || die "docker is missing"
docker info >/dev/null 2>&1 || die "no Docker engine answers (start dockerd first)"
command -v rustc >/dev/null || die "no rustc on this host to copy into the image"

sysroot="$(rustc --print sysroot)"
version="$(rustc --version | awk '{print $2}')"
host="$(rustc -vV | sed -n 's/^host: //p')"
case "$host" in
    x86_64-unknown-linux-gnu | aarch64-unknown-linux-gnu) ;;
    *) die "host toolchain $host: only x86_64 and aarch64 Linux (glibc) are supported" ;;
esac
rustup_bin="$(readlink -f "$(command -v rustup)")" || die "rustup is missing on this host"

work="$(mktemp -d /var/tmp/uring-book-base.XXXXXX)"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"

echo "== debootstrap bookworm ($mirror) into $root"
debootstrap --variant=minbase --include="$packages" bookworm "$root" "$mirror" \
    >"$work/debootstrap.log" 2>&1 || {
    tail -20 "$work/debootstrap.log" >&2
    die "debootstrap failed (log above)"
}

# The same sources as Debian's official image: the release, its updates and
# the security archive.
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: ${mirror}
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
# Docker writes these at run time; the host's copies do not belong in an image.
rm -f "$root/etc/resolv.conf" "$root/etc/hostname"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*

echo "== Rust $version ($host) from $sysroot"
toolchain="$root/usr/local/rustup/toolchains/$version-$host"
mkdir -p "$toolchain" "$root/usr/local/cargo/bin" "$root/usr/local/rustup/update-hashes"
tar -C "$sysroot" --exclude=./share/doc -cf - . | tar -C "$toolchain" -xf -
# Without the HTML, rust-docs is no longer installed: tell rustup so.
rustlib="$toolchain/lib/rustlib"
rm -f "$rustlib/manifest-rust-docs-$host"
sed -i "/^rust-docs-$host\$/d" "$rustlib/components"
python3 - "$rustlib/multirust-config.toml" <<'EOF'
import re, sys
path = sys.argv[1]
text = open(path).read()
blocks = re.split(r"\n(?=\[\[components\]\])", text)
kept = [b for b in blocks if 'pkg = "rust-docs"' not in b]
open(path, "w").write("\n".join(kept).rstrip("\n") + "\n")
EOF
cat >"$root/usr/local/rustup/settings.toml" <<EOF
version = "12"
default_toolchain = "$version-$host"
profile = "minimal"
EOF
install -m 0755 "$rustup_bin" "$root/usr/local/cargo/bin/rustup"
for proxy in cargo cargo-clippy cargo-fmt cargo-miri clippy-driver rls rust-analyzer \
    rust-gdb rust-gdbgui rust-lldb rustc rustdoc rustfmt; do
    ln "$root/usr/local/cargo/bin/rustup" "$root/usr/local/cargo/bin/$proxy"
done
chmod -R a+w "$root/usr/local/rustup" "$root/usr/local/cargo"

echo "== docker import as $tag"
tar -C "$root" --numeric-owner -cf - . | docker import \
    --change "ENV RUSTUP_HOME=/usr/local/rustup" \
    --change "ENV CARGO_HOME=/usr/local/cargo" \
    --change "ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV RUST_VERSION=$version" \
    --change 'CMD ["bash"]' \
    --message "local stand-in for rust:1-bookworm (docker/build-base-image.sh)" \
    - "$tag" >/dev/null

docker run --rm "$tag" sh -c 'rustup --version 2>/dev/null && cargo --version && rustc --version' \
    || die "the imported image cannot run cargo"
echo "== $tag is ready"
