"""A small process supervisor for `manage.py up`: start children, stop them all together.

Each child runs in its own session so a terminal's Ctrl-C reaches only us; we then stop the
children in order with SIGTERM, and SIGKILL whatever is still alive after a grace period.
If any child dies on its own, the rest are stopped too (like honcho/foreman).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence


class Supervisor:
    def __init__(self, commands: Mapping[str, Sequence[str]], env: Mapping[str, str], grace_s: float = 15) -> None:
        self.commands = dict(commands)
        self.env = dict(env)
        self.grace_s = grace_s
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._stopping = False

    def start(self) -> None:
        for name, cmd in self.commands.items():
            self.procs[name] = subprocess.Popen(list(cmd), env=self.env, start_new_session=True)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stopping = True

    def wait(self) -> int:
        """Block until a signal arrives or a child exits; then stop everyone. Returns exit code."""
        exited: str | None = None
        while not self._stopping and exited is None:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    exited = name
                    break
            time.sleep(0.2)
        if exited:
            print(f"[up] {exited} exited with code {self.procs[exited].returncode}; stopping the rest", file=sys.stderr)
        self.stop()
        return 1 if exited else 0

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + self.grace_s
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
