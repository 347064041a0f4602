"""Memory footprint of the whole `make up` stack at idle: summed PSS (shared pages count once).

    .venv/bin/python bench/footprint.py [--quick]

Starts `manage.py up` on a free port (embedded Postgres and Redis unless DATABASE_URL /
REDIS_URL are set), waits for /readyz, lets it settle, sums the PSS of the supervisor, its
children, and the embedded servers, then stops it. Last line: JSON.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
TARGET_MB = 1536


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stack_processes(root: psutil.Process) -> list[psutil.Process]:
    procs = [root, *root.children(recursive=True)]
    var = str(ROOT / "var")
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if var in cmd and ("postgres" in cmd or "redis-server" in cmd) and p not in procs:
            procs.append(p)
            procs += [c for c in p.children(recursive=True) if c not in procs]
    return procs


def main() -> None:
    quick = "--quick" in sys.argv
    port = free_port()
    env = {**os.environ, "DEBUG": os.environ.get("DEBUG", "1")}
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "up", "--port", str(port)], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        time.sleep(5 if quick else 20)  # idle: let beat and the worker settle
        total, by_name = 0, {}
        for p in stack_processes(psutil.Process(proc.pid)):
            try:
                pss = p.memory_full_info().pss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            total += pss
            name = " ".join(p.cmdline()[:4])[-60:]
            by_name[name] = by_name.get(name, 0) + pss
        for name, pss in sorted(by_name.items(), key=lambda kv: -kv[1]):
            print(f"{pss / 2**20:8.1f} MB  {name}")
        total_mb = round(total / 2**20, 1)
        print(f"total PSS: {total_mb} MB (target < {TARGET_MB} MB)")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    print(json.dumps({"bench": "footprint", "idle_pss_mb": total_mb, "targets": {"idle_pss_mb": TARGET_MB}}))


if __name__ == "__main__":
    main()
