"""networking: interfaces, listening sockets, DNS resolution, TCP reachability."""

from __future__ import annotations

import socket
import time

import psutil
from pydantic import BaseModel, ConfigDict, Field

from agents.handlers._util import fail, has_key, ok
from agents.manifest import ActionResult, Agent
from agents.runtime.context import ExecutionContext

agent = Agent("networking", "Interfaces, listening sockets, DNS and reachability of the worker's host.")


@agent.action(forensic_safe=True, gate=has_key("interfaces"))
def interfaces(ctx: ExecutionContext, payload: BaseModel) -> ActionResult:
    """Network interfaces with addresses, state, speed and counters."""
    stats, counters = psutil.net_if_stats(), psutil.net_io_counters(pernic=True)
    out = []
    for name, addrs in psutil.net_if_addrs().items():
        st, io = stats.get(name), counters.get(name)
        out.append(
            {
                "name": name,
                "up": bool(st and st.isup),
                "speed_mbps": st.speed if st else None,
                "mtu": st.mtu if st else None,
                "addresses": [a.address for a in addrs if a.family in (socket.AF_INET, socket.AF_INET6)],
                "bytes_sent": io.bytes_sent if io else 0,
                "bytes_recv": io.bytes_recv if io else 0,
                "errors": (io.errin + io.errout) if io else 0,
            }
        )
    up = sum(i["up"] for i in out)
    return ok(f"{len(out)} interface(s), {up} up", {"interfaces": out})


@agent.action(forensic_safe=True, gate=has_key("listening"))
def listening(ctx: ExecutionContext, payload: BaseModel) -> ActionResult:
    """Listening TCP/UDP sockets and the processes that own them."""
    rows = []
    try:
        conns = psutil.net_connections(kind="inet")
    except psutil.AccessDenied:
        return ok("listening sockets are not visible to this user", {"listening": []}, confidence=0.2)
    for c in conns:
        if c.status == psutil.CONN_LISTEN or (c.type == socket.SOCK_DGRAM and not c.raddr):
            rows.append(
                {
                    "address": c.laddr.ip,
                    "port": c.laddr.port,
                    "proto": "tcp" if c.type == socket.SOCK_STREAM else "udp",
                    "pid": c.pid,
                }
            )
    public = [r for r in rows if r["address"] in ("0.0.0.0", "::")]
    return ok(f"{len(rows)} listening socket(s), {len(public)} on all addresses", {"listening": rows, "public": public})


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = Field(default="localhost", min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.\-]+$")


@agent.action(payload=ResolveIn, forensic_safe=True, retry={"max_attempts": 3, "backoff_base_s": 0.5})
def dns_resolve(ctx: ExecutionContext, payload: ResolveIn) -> ActionResult:
    """Resolve a host name through the system resolver."""
    started = time.perf_counter()
    try:
        infos = socket.getaddrinfo(payload.host, None)
    except socket.gaierror as exc:
        # EAI_AGAIN is a temporary failure of the resolver: worth retrying
        kind = "resolver_timeout" if exc.errno == socket.EAI_AGAIN else "name_not_found"
        return fail(f"{payload.host}: {exc.strerror}", kind)
    addresses = sorted({i[4][0] for i in infos})
    return ok(
        f"{payload.host} -> {', '.join(addresses)}",
        {"host": payload.host, "addresses": addresses, "ms": (time.perf_counter() - started) * 1000},
    )


class TcpIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = Field(default="127.0.0.1", min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.\-:]+$")
    port: int = Field(ge=1, le=65535)
    timeout_s: float = Field(default=2.0, gt=0, le=30)


@agent.action(payload=TcpIn, forensic_safe=True)
def tcp_check(ctx: ExecutionContext, payload: TcpIn) -> ActionResult:
    """Open a TCP connection to host:port and report the connect time."""
    started = time.perf_counter()
    with socket.create_connection((payload.host, payload.port), timeout=payload.timeout_s):
        pass  # refused / timed out raise and are classified (retryable)
    ms = (time.perf_counter() - started) * 1000
    return ok(
        f"{payload.host}:{payload.port} open ({ms:.1f} ms)", {"host": payload.host, "port": payload.port, "ms": ms}
    )
