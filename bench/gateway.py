"""The gateway's added latency and throughput, against a local upstream that answers instantly.

    .venv/bin/python bench/gateway.py [--quick]

Starts a minimal OpenAI-compatible upstream (raw ASGI under uvicorn, a fixed answer) and the
Ai:oS server (the process `make up` runs, WEB_CONCURRENCY workers) on a private database whose
catalog routes to that upstream. Latency: the same request sequentially over one keep-alive
connection, direct to the upstream and through the gateway, side by side; added = difference
of the percentiles; once with a named model, once with `model: "auto"` (routed). Throughput:
requests per second through the gateway with 32 connections (named model).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._common import bench_database, emit, setup_django  # noqa: E402

TARGETS = {"added_p50_ms": 3, "added_p99_ms": 15, "rps": 1000}
# No temperature: OpenAI's default (1) is not cacheable, so every request takes the routing and
# provider path (bench/cache.py measures cache hits).
BODY = {"model": "openai_compatible/fast", "messages": [{"role": "user", "content": "Say hello."}]}
# The same request routed (`auto`): the complexity analysis and model choice on top. The catalog
# routes simple prompts to the same upstream, so the difference is the routing path alone.
AUTO_BODY = {**BODY, "model": "auto"}

UPSTREAM = """
import json
ANSWER = json.dumps({"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "fast",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}}).encode()
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]})
    await send({"type": "http.response.body", "body": ANSWER})
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int) -> None:
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def configure(url: str, upstream: str) -> str:
    """Catalog -> the upstream; a gateway token. Returns the token."""
    setup_django(url)
    from django.contrib.auth import get_user_model

    from aios_site.roles import sync_role_groups
    from aios_site.tokens import token_create
    from routing.models import ModelEndpoint, ProviderCredential
    from routing.secrets import encrypt

    sync_role_groups()
    ProviderCredential.objects.update_or_create(
        provider="openai_compatible", defaults={"base_url": upstream, "encrypted_key": encrypt("k"), "key_hint": "k"}
    )
    ModelEndpoint.objects.update_or_create(
        provider="openai_compatible", model="fast", defaults={"tier": "simple", "priority": 100}
    )
    user, _ = get_user_model().objects.get_or_create(username=f"bench-{uuid.uuid4().hex[:6]}")
    _, raw = token_create(user=user, name=f"bench-{uuid.uuid4().hex[:6]}", scopes=["gateway"])
    return raw


def sequential(url: str, headers: dict[str, str], n: int, body: dict | None = None) -> np.ndarray:
    times = []
    with httpx.Client(headers=headers, timeout=10) as client:
        for i in range(n + 50):
            t = time.perf_counter()
            r = client.post(url, json=body or BODY)
            elapsed = (time.perf_counter() - t) * 1000
            r.raise_for_status()
            if i >= 50:  # warm-up
                times.append(elapsed)
    return np.asarray(times)


async def _connection(port: int, request: bytes, deadline: float, counts: list[int]) -> None:
    """One keep-alive HTTP/1.1 connection sending `request` back to back until `deadline`.
    A raw asyncio client: httpx's async client tops out near 200 requests/s here, which would
    measure the load generator instead of the gateway."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            if status != 200:
                raise RuntimeError(f"status {status}")
            counts[0] += 1
    finally:
        writer.close()


async def throughput(port: int, path: str, headers: dict[str, str], seconds: float, connections: int = 32) -> float:
    body = json.dumps(BODY).encode()
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in headers.items()),
        "",
        "",
    ]
    request = "\r\n".join(lines).encode() + body
    counts = [0]
    started = time.perf_counter()
    await asyncio.gather(*(_connection(port, request, started + seconds, counts) for _ in range(connections)))
    return counts[0] / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n, seconds = (500, 5) if args.quick else (3000, 15)
    url = bench_database("aios_bench_gateway", fresh=True)
    up_port, gw_port = free_port(), free_port()
    upstream_file = ROOT / "var" / "bench_upstream.py"
    upstream_file.write_text(UPSTREAM)
    upstream = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench_upstream:app",
            "--port",
            str(up_port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT / "var",
    )
    token = configure(url, f"http://127.0.0.1:{up_port}")
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "WEB_CONCURRENCY": os.environ.get("WEB_CONCURRENCY", "2"),
        "LOG_LEVEL": "WARNING",
        "AIOS_CAPTURE_CONTENT": "0",
    }
    gateway = subprocess.Popen([sys.executable, "-m", "aios_site.serve", "--port", str(gw_port)], cwd=ROOT, env=env)
    try:
        wait_port(up_port)
        wait_port(gw_port)
        time.sleep(2)
        direct = sequential(f"http://127.0.0.1:{up_port}/chat/completions", {}, n)
        gateway_url, auth = f"http://127.0.0.1:{gw_port}/v1/chat/completions", {"Authorization": f"Bearer {token}"}
        through = sequential(gateway_url, auth, n)
        routed = sequential(gateway_url, auth, n, AUTO_BODY)
        direct_rps = asyncio.run(throughput(up_port, "/chat/completions", {}, seconds / 3))
        rps = asyncio.run(throughput(gw_port, "/v1/chat/completions", {"Authorization": f"Bearer {token}"}, seconds))
    finally:
        gateway.terminate()
        upstream.terminate()
        gateway.wait(timeout=30)
        upstream.wait(timeout=30)
        upstream_file.unlink(missing_ok=True)
    d50, d99 = np.percentile(direct, 50), np.percentile(direct, 99)
    g50, g99 = np.percentile(through, 50), np.percentile(through, 99)
    print(f"direct to upstream: P50 {d50:.2f} ms, P99 {d99:.2f} ms ({n} sequential requests)")
    print(f"through the gateway: P50 {g50:.2f} ms, P99 {g99:.2f} ms; mean {statistics.mean(through):.2f} ms")
    print(f"added: P50 {g50 - d50:.2f} ms, P99 {g99 - d99:.2f} ms")
    a50, a99 = np.percentile(routed, 50), np.percentile(routed, 99)
    print(f"routed (model auto): P50 {a50:.2f} ms, P99 {a99:.2f} ms; added P50 {a50 - d50:.2f}, P99 {a99 - d99:.2f} ms")
    print(f"throughput at 32 connections: {rps:,.0f} requests/s through the gateway ({direct_rps:,.0f} direct)")
    emit(
        {
            "bench": "gateway",
            "added_p50_ms": round(g50 - d50, 2),
            "added_p99_ms": round(g99 - d99, 2),
            "rps": round(rps),
            "direct_rps": round(direct_rps),
            "direct_p50_ms": round(d50, 2),
            "gateway_p50_ms": round(g50, 2),
            "auto_added_p50_ms": round(a50 - d50, 2),
            "auto_added_p99_ms": round(a99 - d99, 2),
            "targets": TARGETS,
        }
    )


if __name__ == "__main__":
    main()
