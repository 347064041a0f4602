"""Process helpers for the agent benchmarks: a private Redis, Celery workers and beat on the
bench database, each in its own session so a SIGKILL takes the whole process group."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class Stack:
    def __init__(self, database_url: str, name: str, **env: str) -> None:
        from aios_core import embedded

        self.redis_dir = ROOT / "var" / f"b{name[:6]}-{uuid.uuid4().hex[:6]}"
        self.redis_url = embedded.redis_url(self.redis_dir)
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": self.redis_url,
            "LOG_LEVEL": "ERROR",
            "AIOS_CELERY_QUEUE": f"bench-{name}",
            "AIOS_CHANNELS_PREFIX": f"bench-{name}",
            "AIOS_CACHE_PREFIX": f"bench-{name}",
            "CONN_MAX_AGE": "600",
            "AIOS_CELERY_DB_REUSE_MAX": "1000",
            "PYTHONUNBUFFERED": "1",
            "ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
            **env,
        }
        os.environ.update({k: v for k, v in self.env.items() if k.startswith(("AIOS_", "REDIS_URL", "ALLOWED_"))})
        self.worker: subprocess.Popen[bytes] | None = None
        self.beat: subprocess.Popen[bytes] | None = None

    def _spawn(self, args: list[str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "aios_site", *args],
            env=self.env,
            cwd=ROOT,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
        )

    def start_worker(self, concurrency: int = 2) -> None:
        self.worker = self._spawn(
            [
                "worker",
                "--concurrency",
                str(concurrency),
                "--loglevel",
                "ERROR",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ]
        )

    def kill_worker(self) -> None:
        if self.worker is not None:
            os.killpg(self.worker.pid, signal.SIGKILL)
            self.worker.wait()
            self.worker = None

    def start_beat(self) -> None:
        schedule = self.redis_dir / "beat-schedule"
        self.beat = self._spawn(["beat", "--loglevel", "ERROR", "-s", str(schedule)])

    def restart_broker(self, down_s: float = 1.0) -> None:
        from aios_core import embedded

        embedded.redis_stop(self.redis_dir)
        time.sleep(down_s)
        embedded.redis_url(self.redis_dir)

    def stop(self) -> None:
        from aios_core import embedded

        for proc in (self.worker, self.beat):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        embedded.redis_stop(self.redis_dir)
        shutil.rmtree(self.redis_dir, ignore_errors=True)


def wait_worker_ready(timeout: float = 60) -> None:
    from aios_site.tasks import ping

    deadline = time.monotonic() + timeout
    while True:
        try:
            ping.apply_async().get(timeout=5)
            return
        except Exception:  # noqa: BLE001 - still starting
            if time.monotonic() > deadline:
                raise RuntimeError("worker did not start") from None
