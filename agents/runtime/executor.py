"""Every change a handler makes to the host goes through one executor.

- `SandboxExecutor` (the default, `AIOS_EXECUTOR=sandbox`): applies changes to a scratch
  directory (`AIOS_SANDBOX_DIR`, default var/sandbox). Files map to `<sandbox>/files/<abs path>`;
  sysctl writes to `<sandbox>/sysctl/`; firewall rulesets are *simulated*: the rules are
  recorded in `<sandbox>/firewall/ruleset.json` as the plan nft would apply (this machine has no
  nft / iptables and no root-free network namespace with a firewall to apply them to).
- `HostExecutor` (`AIOS_EXECUTOR=host`): applies changes to the machine the worker runs on
  (in a container: only what the container may see). Never the default; never used in tests.
- `ForensicExecutor`: refuses every change and records what it would have done: the run's preview.

Reads never need the executor; read-only commands go through `run_readonly` (an allow-list),
the only subprocess a forensic run may start.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from agents.runtime.errors import PermanentError
from agents.runtime.guard import allow_readonly_commands

# argv[0] and its first argument(s) a read-only command may start with
READONLY_COMMANDS: tuple[tuple[str, ...], ...] = (
    ("nft", "list"),
    ("iptables", "-S"),
    ("iptables", "-L"),
    ("ip6tables", "-S"),
    ("ufw", "status"),
    ("uname",),
    ("lsmod",),
    ("sysctl", "-n"),
    ("openssl", "version"),
    ("ip", "-j"),
    ("ip", "addr"),
    ("ip", "route"),
    ("ss", "-lnt"),
    ("lsblk", "-J"),
    ("cryptsetup", "status"),
    ("systemctl", "is-active"),
    ("getenforce",),
    ("aa-status",),
)


class Executor:
    kind = "base"
    applies = True

    def __init__(self) -> None:
        self.changes: list[dict[str, Any]] = []

    # --- reads --------------------------------------------------------------------------------
    def run_readonly(
        self, argv: list[str], *, timeout: float = 10.0, allow_tools: list[str] | tuple[str, ...] = ()
    ) -> tuple[int, str]:
        """Run an allow-listed read-only command (or `<tool> --version` for a tool in `allow_tools`)."""
        version_query = len(argv) == 2 and argv[1] == "--version" and argv[0] in allow_tools
        if not version_query and not any(tuple(argv[: len(p)]) == p for p in READONLY_COMMANDS):
            raise PermanentError(f"not an allowed read-only command: {argv[:2]}", error_type="permission")
        if shutil.which(argv[0]) is None:
            return 127, f"{argv[0]}: not installed"
        with allow_readonly_commands():
            try:
                proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
            except OSError as exc:
                return 126, str(exc)
        return proc.returncode, (proc.stdout or proc.stderr)[-20000:]

    # --- changes ------------------------------------------------------------------------------
    def _record(self, op: str, target: str, detail: dict[str, Any], applied: bool, **extra: Any) -> dict[str, Any]:
        change = {"op": op, "target": target, "detail": detail, "applied": applied, "executor": self.kind, **extra}
        self.changes.append(change)
        return change

    def write_file(self, path: str, content: str) -> dict[str, Any]:
        raise NotImplementedError

    def remove_file(self, path: str) -> dict[str, Any]:
        raise NotImplementedError

    def set_sysctl(self, key: str, value: str) -> dict[str, Any]:
        raise NotImplementedError

    def firewall_apply(self, rules: list[str], *, enable: bool = True) -> dict[str, Any]:
        raise NotImplementedError

    def apply_effect(self, key: str, kind: str, detail: dict[str, Any]) -> dict[str, Any]:
        """An application-level side effect, idempotent by `key`: a second call with the same key
        (a run redelivered after its worker died between acting and recording) changes nothing."""
        from agents.models import SideEffect

        with connection.cursor() as cur:
            cur.execute(
                f"INSERT INTO {SideEffect._meta.db_table} (key, kind, detail, applied_at, replays) "
                "VALUES (%s, %s, %s, %s, 0) ON CONFLICT (key) DO UPDATE SET replays = "
                f"{SideEffect._meta.db_table}.replays + 1 RETURNING replays",
                [key, kind, json.dumps(detail), timezone.now()],
            )
            replays = cur.fetchone()[0]
        if replays == 0:
            self._effect_made(key, kind)
        return self._record("effect", key, {"kind": kind, **detail}, True, replay=replays > 0)

    def _effect_made(self, key: str, kind: str) -> None:
        """The world change behind an application-level effect, made once the ledger took the key."""

    def apply(self, op: str, target: str, detail: dict[str, Any], fn: Any) -> dict[str, Any]:
        """A change to this application's own state (e.g. a stored baseline): run `fn` unless forensic."""
        fn()
        return self._record(op, target, detail, True)


class SandboxExecutor(Executor):
    kind = "sandbox"

    def __init__(self, root: Path | None = None) -> None:
        super().__init__()
        self.root = Path(root or settings.AIOS_SANDBOX_DIR)

    def _effect_made(self, key: str, kind: str) -> None:
        """Appends a line to the sandbox's effect log: one line per change actually made, so a
        count by key shows any effect made twice (bench/reliability.py reads it)."""
        log_path = self.root / "effects.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a", encoding="utf-8") as fh:  # O_APPEND: one write per line, whole
            fh.write(f"{key}\t{kind}\t{os.getpid()}\n")

    def sandbox_path(self, path: str) -> Path:
        resolved = Path(os.path.normpath("/" + path.lstrip("/")))
        return self.root / "files" / resolved.relative_to("/")

    def write_file(self, path: str, content: str) -> dict[str, Any]:
        target = self.sandbox_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        return self._record("write_file", path, {"bytes": len(content), "sandbox_path": str(target)}, True)

    def remove_file(self, path: str) -> dict[str, Any]:
        target = self.sandbox_path(path)
        existed = target.exists()
        target.unlink(missing_ok=True)
        return self._record("remove_file", path, {"existed": existed, "sandbox_path": str(target)}, True)

    def set_sysctl(self, key: str, value: str) -> dict[str, Any]:
        target = self.root / "sysctl" / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(value)
        return self._record("set_sysctl", key, {"value": value, "sandbox_path": str(target)}, True)

    def firewall_apply(self, rules: list[str], *, enable: bool = True) -> dict[str, Any]:
        target = self.root / "firewall" / "ruleset.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        state = {"enabled": enable, "rules": rules, "applied_at": timezone.now().isoformat(), "simulated": True}
        target.write_text(json.dumps(state, indent=2))
        detail = {"rules": rules, "enabled": enable, "sandbox_path": str(target), "mode": "simulated"}
        return self._record("firewall_apply", "firewall", detail, True)

    def firewall_state(self) -> dict[str, Any] | None:
        target = self.root / "firewall" / "ruleset.json"
        return json.loads(target.read_text()) if target.exists() else None


class HostExecutor(Executor):
    """Acts on the real machine. Selected only by AIOS_EXECUTOR=host (production, deliberately)."""

    kind = "host"

    def write_file(self, path: str, content: str) -> dict[str, Any]:
        Path(path).write_text(content)
        return self._record("write_file", path, {"bytes": len(content)}, True)

    def remove_file(self, path: str) -> dict[str, Any]:
        existed = os.path.exists(path)
        Path(path).unlink(missing_ok=True)
        return self._record("remove_file", path, {"existed": existed}, True)

    def set_sysctl(self, key: str, value: str) -> dict[str, Any]:
        Path("/proc/sys", *key.split(".")).write_text(value)
        return self._record("set_sysctl", key, {"value": value}, True)

    def firewall_apply(self, rules: list[str], *, enable: bool = True) -> dict[str, Any]:
        if shutil.which("nft") is None:
            raise PermanentError("nft is not installed on this host", error_type="unsupported")
        script = "\n".join(rules) + "\n"
        proc = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True, timeout=30, check=False)
        if proc.returncode != 0:
            raise PermanentError(f"nft refused the ruleset: {proc.stderr[:500]}", error_type="firewall_rejected")
        return self._record("firewall_apply", "firewall", {"rules": rules, "enabled": enable}, True)


class ForensicExecutor(Executor):
    """Refuses every change; records each as the plan (the run's preview)."""

    kind = "forensic"
    applies = False

    def write_file(self, path: str, content: str) -> dict[str, Any]:
        return self._record("write_file", path, {"bytes": len(content)}, False)

    def remove_file(self, path: str) -> dict[str, Any]:
        return self._record("remove_file", path, {"existed": os.path.exists(path)}, False)

    def set_sysctl(self, key: str, value: str) -> dict[str, Any]:
        return self._record("set_sysctl", key, {"value": value}, False)

    def firewall_apply(self, rules: list[str], *, enable: bool = True) -> dict[str, Any]:
        return self._record("firewall_apply", "firewall", {"rules": rules, "enabled": enable}, False)

    def apply_effect(self, key: str, kind: str, detail: dict[str, Any]) -> dict[str, Any]:
        return self._record("effect", key, {"kind": kind, **detail}, False)

    def apply(self, op: str, target: str, detail: dict[str, Any], fn: Any) -> dict[str, Any]:
        return self._record(op, target, detail, False)


def executor_for(*, forensic: bool) -> Executor:
    if forensic:
        return ForensicExecutor()
    kind = settings.AIOS_EXECUTOR
    if kind == "host":
        return HostExecutor()
    return SandboxExecutor()
