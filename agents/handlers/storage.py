"""storage: disk usage, I/O counters, largest files, and a directory snapshot written by the executor."""

from __future__ import annotations

import heapq
import json
import os

import psutil
from django.conf import settings
from pydantic import BaseModel, ConfigDict, Field

from agents.handlers._util import has_key, ok
from agents.manifest import ActionResult, Agent
from agents.runtime.context import ExecutionContext

agent = Agent("storage", "Disks, filesystems and files of the worker's host.")


class UsageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    warn_percent: float = Field(default=85.0, gt=0, le=100)


def _partitions_present(result: ActionResult, payload: BaseModel) -> str | None:
    return None if result.payload.get("partitions") else "no filesystem was measured"


@agent.action(payload=UsageIn, forensic_safe=True, gate=_partitions_present)
def disk_usage(ctx: ExecutionContext, payload: UsageIn) -> ActionResult:
    """Usage of every mounted filesystem; those above the warning threshold."""
    rows, seen = [], set()
    for part in psutil.disk_partitions(all=False):
        if part.mountpoint in seen:
            continue
        seen.add(part.mountpoint)
        try:
            u = psutil.disk_usage(part.mountpoint)
        except OSError:
            continue
        rows.append(
            {
                "mount": part.mountpoint,
                "device": part.device,
                "fstype": part.fstype,
                "total": u.total,
                "used": u.used,
                "free": u.free,
                "percent": u.percent,
            }
        )
    if not rows:  # containers may list no partitions: measure the root and our own data directory
        for mount in ("/", str(settings.VAR_DIR)):
            u = psutil.disk_usage(mount)
            rows.append(
                {
                    "mount": mount,
                    "device": "",
                    "fstype": "",
                    "total": u.total,
                    "used": u.used,
                    "free": u.free,
                    "percent": u.percent,
                }
            )
    full = [r["mount"] for r in rows if r["percent"] >= payload.warn_percent]
    return ok(
        f"{len(rows)} filesystem(s), {len(full)} above {payload.warn_percent:g}%", {"partitions": rows, "full": full}
    )


@agent.action(forensic_safe=True, gate=has_key("disks"))
def io_stats(ctx: ExecutionContext, payload: BaseModel) -> ActionResult:
    """Read/write counters per disk since boot."""
    counters = psutil.disk_io_counters(perdisk=True) or {}
    disks = {
        name: {
            "read_bytes": c.read_bytes,
            "write_bytes": c.write_bytes,
            "read_count": c.read_count,
            "write_count": c.write_count,
            "busy_ms": getattr(c, "busy_time", None),
        }
        for name, c in counters.items()
    }
    return ok(f"{len(disks)} disk(s)", {"disks": disks}, confidence=1.0 if disks else 0.3)


class LargeFilesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(default="", max_length=1000, description="directory to scan (default: the var directory)")
    top: int = Field(default=20, ge=1, le=500)
    max_files: int = Field(default=50_000, ge=1, le=1_000_000)


def _walk(root: str, limit: int) -> tuple[list[tuple[int, str]], int]:
    found, scanned = [], 0
    for dirpath, _dirs, files in os.walk(root, onerror=lambda e: None):
        for name in files:
            scanned += 1
            if scanned > limit:
                return found, scanned - 1
            full = os.path.join(dirpath, name)
            try:
                found.append((os.lstat(full).st_size, full))
            except OSError:
                continue
    return found, scanned


@agent.action(payload=LargeFilesIn, forensic_safe=True, gate=has_key("files"))
def large_files(ctx: ExecutionContext, payload: LargeFilesIn) -> ActionResult:
    """The largest files under a directory (read-only scan, bounded)."""
    root = payload.path or str(settings.VAR_DIR)
    if not os.path.isdir(root):
        raise ValueError(f"payload.path: {root} is not a directory")
    found, scanned = _walk(root, payload.max_files)
    top = heapq.nlargest(payload.top, found)
    files = [{"path": p, "bytes": s} for s, p in top]
    return ok(f"scanned {scanned} file(s) under {root}", {"root": root, "scanned": scanned, "files": files})


class SnapshotIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(default="/etc", max_length=1000)
    target: str = Field(default="/var/lib/aios/snapshots/etc.json", max_length=1000, pattern=r"^/[\w./\-]+\.json$")


@agent.action(payload=SnapshotIn, risk="low", gate=has_key("change"))
def snapshot_listing(ctx: ExecutionContext, payload: SnapshotIn) -> ActionResult:
    """Write a listing (names, sizes, modes) of a directory to a file, through the executor."""
    entries = []
    for dirpath, _dirs, files in os.walk(payload.path, onerror=lambda e: None):
        for name in files[:2000]:
            full = os.path.join(dirpath, name)
            try:
                st = os.lstat(full)
            except OSError:
                continue
            entries.append({"path": full, "bytes": st.st_size, "mode": oct(st.st_mode & 0o7777)})
        if len(entries) > 20_000:
            break
    change = ctx.executor.write_file(payload.target, json.dumps(entries))
    return ok(
        f"{len(entries)} entries -> {payload.target} ({ctx.executor.kind})", {"entries": len(entries), "change": change}
    )


class CleanupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(default="/tmp", max_length=1000)
    older_than_days: int = Field(default=7, ge=1, le=3650)
    limit: int = Field(default=100, ge=1, le=10_000)


@agent.action(payload=CleanupIn, requires_approval=True, risk="medium", gate=has_key("removed"))
def cleanup(ctx: ExecutionContext, payload: CleanupIn) -> ActionResult:
    """Remove files older than N days under a directory, through the executor."""
    import time

    cutoff = time.time() - payload.older_than_days * 86400
    victims = []
    for dirpath, _dirs, files in os.walk(payload.path, onerror=lambda e: None):
        for name in files:
            full = os.path.join(dirpath, name)
            try:
                if os.lstat(full).st_mtime < cutoff:
                    victims.append(full)
            except OSError:
                continue
            if len(victims) >= payload.limit:
                break
    changes = [ctx.executor.remove_file(p) for p in victims]
    return ok(
        f"{len(changes)} file(s) older than {payload.older_than_days} d ({ctx.executor.kind})",
        {"removed": [c["target"] for c in changes]},
    )
