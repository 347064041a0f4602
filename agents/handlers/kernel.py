"""kernel: identity and uptime, sysctl reads and (approved) writes, loaded modules."""

from __future__ import annotations

import os
import platform
import time

import psutil
from pydantic import BaseModel, ConfigDict, Field

from agents.handlers._util import has_key, ok, read_text
from agents.manifest import ActionResult, Agent
from agents.runtime.context import ExecutionContext

agent = Agent("kernel", "Kernel identity, parameters (sysctl) and modules of the worker's host.")

SYSCTL_KEY = r"^[a-z0-9_]+(\.[a-z0-9_\-]+)+$"
DEFAULT_KEYS = [
    "kernel.randomize_va_space",
    "net.ipv4.ip_forward",
    "net.ipv4.tcp_syncookies",
    "vm.swappiness",
    "kernel.kptr_restrict",
    "kernel.dmesg_restrict",
    "fs.protected_symlinks",
]
HARDENED = {
    "kernel.randomize_va_space": "2",
    "net.ipv4.tcp_syncookies": "1",
    "kernel.kptr_restrict": "1",
    "fs.protected_symlinks": "1",
}


@agent.action(forensic_safe=True, gate=has_key("release"))
def info(ctx: ExecutionContext, payload: BaseModel) -> ActionResult:
    """Kernel release, architecture, uptime, load and CPU count."""
    uname = platform.uname()
    boot = psutil.boot_time()
    load = os.getloadavg()
    return ok(
        f"{uname.system} {uname.release}, up {int((time.time() - boot) / 3600)} h",
        {
            "system": uname.system,
            "release": uname.release,
            "version": uname.version,
            "machine": uname.machine,
            "hostname": uname.node,
            "boot_time": boot,
            "uptime_s": int(time.time() - boot),
            "load_avg": load,
            "cpus": psutil.cpu_count(),
            "cmdline": read_text("/proc/cmdline").strip()[:500],
        },
    )


class SysctlReadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keys: list[str] = Field(default=DEFAULT_KEYS, min_length=1, max_length=100)


def _sysctl_path(key: str) -> str:
    return os.path.join("/proc/sys", *key.split("."))


@agent.action(payload=SysctlReadIn, forensic_safe=True, gate=has_key("values"))
def sysctl_read(ctx: ExecutionContext, payload: SysctlReadIn) -> ActionResult:
    """Read kernel parameters and compare them with hardened values."""
    values = {k: read_text(_sysctl_path(k), default="").strip() or None for k in payload.keys}
    deviations = {
        k: {"value": v, "hardened": HARDENED[k]}
        for k, v in values.items()
        if k in HARDENED and v is not None and v != HARDENED[k]
    }
    return ok(
        f"{sum(v is not None for v in values.values())} parameter(s) read; {len(deviations)} not hardened",
        {"values": values, "deviations": deviations},
    )


@agent.action(forensic_safe=True, gate=has_key("modules"))
def modules(ctx: ExecutionContext, payload: BaseModel) -> ActionResult:
    """Loaded kernel modules (from /proc/modules), largest first."""
    rows = []
    for line in read_text("/proc/modules").splitlines():
        parts = line.split()
        if len(parts) >= 3:
            rows.append({"name": parts[0], "size": int(parts[1]), "used_by": int(parts[2])})
    rows.sort(key=lambda r: -r["size"])
    visible = bool(rows)
    return ok(
        f"{len(rows)} module(s) loaded" if visible else "modules not visible (container?)",
        {"modules": rows[:200], "count": len(rows)},
        confidence=1.0 if visible else 0.3,
    )


class SysctlSetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(pattern=SYSCTL_KEY, max_length=200)
    value: str = Field(min_length=1, max_length=200)


@agent.action(payload=SysctlSetIn, requires_approval=True, risk="high", gate=has_key("change"))
def sysctl_set(ctx: ExecutionContext, payload: SysctlSetIn) -> ActionResult:
    """Set one kernel parameter (through the executor: a sandbox file unless AIOS_EXECUTOR=host)."""
    before = read_text(_sysctl_path(payload.key)).strip() or None
    change = ctx.executor.set_sysctl(payload.key, payload.value)
    return ok(f"{payload.key}: {before} -> {payload.value} ({ctx.executor.kind})", {"before": before, "change": change})
