#!/usr/bin/env python3
"""Checks the container setup's files against each other, without Docker.

docker-compose.yml must define the `dev` service the Justfile uses, build it
with the caller's uid and gid, mount the repository at /app, publish ports 7878
and 3000 on 127.0.0.1 unless told otherwise, keep the cargo caches in volumes,
take its limits from the environment (unlimited locked memory by default), and
pass a seccomp profile that exists and allows io_uring. The Justfile must pass
the uid and gid, run compose through docker/compose, and have every recipe the
book names. tests/seccomp.rs checks the profile itself, call by call.
Usage: scripts/check-container.py (from anywhere).
"""
import json
import re
import sys
from pathlib import Path

import yaml

root = Path(__file__).resolve().parent.parent
problems = []


def need(ok, what):
    if not ok:
        problems.append(what)


compose = yaml.safe_load((root / "docker-compose.yml").read_text())
dev = compose.get("services", {}).get("dev")
need(dev is not None, "no service `dev`")
dev = dev or {}

args = dev.get("build", {}).get("args", {})
need(args.get("UID") == "${URING_BOOK_UID:-1000}", "the build does not take URING_BOOK_UID")
need(args.get("GID") == "${URING_BOOK_GID:-1000}", "the build does not take URING_BOOK_GID")
image = dev.get("image", "")
need("${URING_BOOK_UID:-1000}" in image, "the image name does not say whose uid it has")

need(".:/app" in dev.get("volumes", []), "the repository is not mounted at /app")
volumes = [v.split(":")[0] for v in dev.get("volumes", [])]
for cache in ("cargo-registry", "cargo-target"):
    need(cache in volumes and cache in compose.get("volumes", {}), f"no volume {cache}")

ports = dev.get("ports", [])
for port in ("7878", "3000"):
    published = [p for p in ports if str(p).endswith(f":{port}")]
    need(len(published) == 1, f"port {port} is not published")
    for p in published:
        need(p.startswith("${URING_BOOK_BIND:-127.0.0.1}:"), f"{p} is not on 127.0.0.1 by default")

ulimits = dev.get("ulimits", {})
need(ulimits.get("memlock") == "${URING_BOOK_MEMLOCK:--1}",
     "memlock is not URING_BOOK_MEMLOCK, unlimited by default")
nofile = ulimits.get("nofile", {})
need(nofile.get("soft") == nofile.get("hard") == "${URING_BOOK_NOFILE:-65536}",
     "nofile is not URING_BOOK_NOFILE")

env = dev.get("environment", {})
seccomp = [o for o in dev.get("security_opt", []) if o.startswith("seccomp=")]
need(len(seccomp) == 1, "no seccomp profile in security_opt")
if seccomp:
    path = seccomp[0].split("=", 1)[1]
    need(env.get("URING_BOOK_SECCOMP_PROFILE") == path.removeprefix("./"),
         "URING_BOOK_SECCOMP_PROFILE does not name the profile")
    profile = root / path
    need(profile.is_file(), f"{profile} does not exist")
    if profile.is_file():
        data = json.loads(profile.read_text())
        need(data.get("defaultAction") == "SCMP_ACT_ERRNO", "the profile is not an allow-list")
        allowed = {n for rule in data["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW"
                   and "args" not in rule and "includes" not in rule for n in rule["names"]}
        for call in ("io_uring_setup", "io_uring_enter", "io_uring_register"):
            need(call in allowed, f"the profile does not allow {call}")
        for call in ("add_key", "keyctl", "request_key", "mount", "bpf", "unshare"):
            need(call not in allowed, f"the profile allows {call}")

justfile = (root / "Justfile").read_text()
for var in ("URING_BOOK_UID", "URING_BOOK_GID"):
    need(re.search(rf"^export {var} := `id -[ug]`$", justfile, re.M) is not None,
         f"the Justfile does not export {var}")
need('compose := "docker/compose"' in justfile, "the Justfile does not use docker/compose")
need("exec $(test -t 0 || echo -T) dev" in justfile,
     "the Justfile's exec asks for a terminal even without one")
need(re.search(r"uring-book-dev:uid-\{\{URING_BOOK_UID\}\}", justfile) is not None
     and image == "uring-book-dev:uid-${URING_BOOK_UID:-1000}",
     "the Justfile and docker-compose.yml name different images")
for recipe in ("up", "shell", "down", "serve", "test", "test-host", "run N", "doctor",
               "doctor-default", "regen-output"):
    need(re.search(rf"^{recipe}( \*ARGS)?:", justfile, re.M) is not None, f"no recipe `{recipe}`")

ignore = (root / ".dockerignore").read_text().split()
need("*" in ignore and "!docker/ca-certificates/" in ignore,
     ".dockerignore does not keep the build context to docker/ca-certificates/")
gitignore = (root / ".gitignore").read_text().split()
need("docker/ca-certificates/*.crt" in gitignore, "git does not ignore the CA certificates")

for line in problems:
    print(line)
print(f"container setup: {len(problems)} problems")
sys.exit(1 if problems else 0)
