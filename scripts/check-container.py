#!/usr/bin/env python3
"""Checks what can be checked of the container setup without a Docker engine.

docker-compose.yml must define the `dev` service the Justfile uses, mount the
repository at /app, publish ports 7878 and 3000, keep the cargo caches in
volumes, raise RLIMIT_MEMLOCK, and pass a seccomp profile that exists and is
valid JSON. Usage: scripts/check-container.py (from anywhere).
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
need(".:/app" in dev.get("volumes", []), "the repository is not mounted at /app")
for port in ("7878:7878", "3000:3000"):
    need(port in dev.get("ports", []), f"port {port} is not published")
volumes = [v.split(":")[0] for v in dev.get("volumes", [])]
for cache in ("cargo-registry", "cargo-target"):
    need(cache in volumes and cache in compose.get("volumes", {}), f"no volume {cache}")
need(dev.get("ulimits", {}).get("memlock") == -1, "memlock is not unlimited")

seccomp = [o for o in dev.get("security_opt", []) if o.startswith("seccomp=")]
need(len(seccomp) == 1, "no seccomp profile in security_opt")
if seccomp:
    profile = root / seccomp[0].split("=", 1)[1]
    need(profile.is_file(), f"{profile} does not exist")
    if profile.is_file():
        data = json.loads(profile.read_text())
        need(data.get("defaultAction") == "SCMP_ACT_ALLOW", "unexpected defaultAction")
        names = {n for rule in data["syscalls"] for n in rule["names"]}
        need(not names & {"io_uring_setup", "io_uring_enter", "io_uring_register"},
             "the profile refuses io_uring")
        for denied in ("mount", "bpf", "kexec_load", "init_module", "unshare"):
            need(denied in names, f"the profile does not refuse {denied}")

justfile = (root / "Justfile").read_text()
need(re.search(r"exec dev ", justfile) is not None, "the Justfile does not use service dev")
for recipe in ("up", "shell", "down", "serve", "test", "test-host", "run N", "doctor"):
    need(re.search(rf"^{recipe}\b.*:", justfile, re.M) is not None, f"no recipe `{recipe}`")

for line in problems:
    print(line)
print(f"container setup: {len(problems)} problems")
sys.exit(1 if problems else 0)
