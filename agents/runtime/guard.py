"""Forensic enforcement inside the process: while a forensic handler runs, the interpreter's
audit hook refuses file writes, deletions, renames, permission changes, signals to processes
and new subprocesses, whatever the handler's code tries. Only the executor's read-only command
runner passes (it marks itself with `allow_readonly_commands`).

The hook is installed once per process (audit hooks cannot be removed); outside forensic runs
it costs one context-variable read per audited event.
"""

from __future__ import annotations

import contextvars
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from agents.runtime.errors import ForensicRefusal

_forensic = contextvars.ContextVar("aios_forensic", default=False)
_bypass = contextvars.ContextVar("aios_forensic_bypass", default=False)
_installed = False

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_REFUSED_EVENTS = {
    "os.remove",
    "os.rename",
    "os.rmdir",
    "os.mkdir",
    "os.chmod",
    "os.chown",
    "os.truncate",
    "os.link",
    "os.symlink",
    "os.utime",
    "os.kill",
    "os.killpg",
    "os.system",
    "os.exec",
    "os.spawn",
    "os.posix_spawn",
    "os.fork",
    "shutil.rmtree",
    "shutil.move",
    "shutil.copyfile",
    "subprocess.Popen",
    "os.putenv",
    "os.unsetenv",
}


def _is_write_open(args: tuple[Any, ...]) -> bool:
    mode, flags = (args[1], args[2]) if len(args) >= 3 else (None, 0)
    if isinstance(mode, str) and any(c in mode for c in "wax+"):
        return True
    return isinstance(flags, int) and bool(flags & _WRITE_FLAGS)


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if not _forensic.get() or _bypass.get():
        return
    if event == "open" and _is_write_open(args):
        raise ForensicRefusal(f"forensic mode: refused to open {args[0]!r} for writing")
    if event in _REFUSED_EVENTS:
        raise ForensicRefusal(f"forensic mode: refused {event}")


def install() -> None:
    global _installed
    if not _installed:
        sys.addaudithook(_hook)
        _installed = True


@contextmanager
def forensic_guard(active: bool) -> Iterator[None]:
    install()
    token = _forensic.set(active)
    try:
        yield
    finally:
        _forensic.reset(token)


@contextmanager
def allow_readonly_commands() -> Iterator[None]:
    """Only for the executor's allow-listed, read-only commands."""
    token = _bypass.set(True)
    try:
        yield
    finally:
        _bypass.reset(token)


def forensic_active() -> bool:
    return _forensic.get()
