"""Delay from a span's end to the websocket message that includes it, with 1 and 100 clients.

    .venv/bin/python bench/live.py [--quick]

Starts the ASGI server (the one `make up` runs) on a private database and channel prefix,
connects N logged-in websocket clients to /ws/metrics/, and writes spans at 1,000 per second
from a separate process for 20 s (--quick: 8 s). Each live message carries the watermark (the
newest span end it includes); a span's delay is the time from its end to the first message,
at each client, whose watermark covers it. P50/P95 over all spans and clients.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import uuid
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._common import bench_database, emit, setup_django  # noqa: E402

TARGETS = {"p95_delay_ms_100": 1000}
RATE = 1000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def produce(url: str, seconds: float, out: str) -> None:
    """Spans at RATE per second; saves each span's end time (epoch seconds)."""
    setup_django(url)
    from observability import get_observability

    obs = get_observability()
    ends, started, n = [], time.time(), 0
    while time.time() - started < seconds:
        target = started + n / RATE
        delay = target - time.time()
        if delay > 0:
            time.sleep(delay)
        with obs.trace_span("bench.live", agent_name="bench", kind="action"):
            pass
        ends.append(time.time())
        n += 1
    obs.flush(timeout=60)
    np.save(out, np.asarray(ends))


async def client(ws_url: str, cookie: str, origin: str, stop: asyncio.Event, log: list[tuple[float, float]]) -> None:
    import websockets

    async with websockets.connect(ws_url, additional_headers={"Cookie": cookie, "Origin": origin}) as ws:
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=0.5)
            except TimeoutError:
                continue
            received = time.time()
            msg = json.loads(raw)
            if msg.get("type") == "update" and msg.get("watermark"):
                log.append((received, datetime.fromisoformat(msg["watermark"]).timestamp()))


async def run_clients(n: int, ws_url: str, cookie: str, origin: str, seconds: float, producer: mp.Process) -> list:
    stop = asyncio.Event()
    logs: list[list[tuple[float, float]]] = [[] for _ in range(n)]
    tasks = [asyncio.create_task(client(ws_url, cookie, origin, stop, logs[i])) for i in range(n)]
    await asyncio.sleep(2)  # all connected and past their snapshot
    producer.start()
    while producer.is_alive():
        await asyncio.sleep(0.2)
    await asyncio.sleep(2)  # the last messages
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return logs


def delays(ends: np.ndarray, logs: list[list[tuple[float, float]]]) -> np.ndarray:
    out = []
    for log in logs:
        if not log:
            continue
        received = np.asarray([r for r, _ in log])
        watermark = np.maximum.accumulate(np.asarray([w for _, w in log]))
        idx = np.searchsorted(watermark, ends - 1e-6, side="left")  # first message covering each span
        covered = idx < len(watermark)
        out.append(received[idx[covered]] - ends[covered])
    return np.concatenate(out) * 1000 if out else np.zeros(0)


def session_cookie(url: str) -> str:
    setup_django(url)
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.sessions.backends.db import SessionStore

    from aios_site.roles import sync_role_groups

    sync_role_groups()
    user, _ = get_user_model().objects.get_or_create(username="bench-viewer")
    from django.contrib.auth.models import Group

    user.groups.add(Group.objects.get(name="viewer"))
    store = SessionStore()
    store["_auth_user_id"] = str(user.pk)
    store["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    store["_auth_user_hash"] = user.get_session_auth_hash()
    store.create()
    return f"{settings.SESSION_COOKIE_NAME}={store.session_key}"


def scenario(n_clients: int, url: str, cookie: str, port: int, seconds: float) -> dict[str, float]:
    ends_file = str(ROOT / "var" / f"bench-live-ends-{uuid.uuid4().hex[:6]}.npy")
    producer = mp.get_context("spawn").Process(target=produce, args=(url, seconds, ends_file))
    ws_url = f"ws://127.0.0.1:{port}/ws/metrics/?" + urllib.parse.urlencode({"window": "15m"})
    logs = asyncio.run(run_clients(n_clients, ws_url, cookie, f"http://127.0.0.1:{port}", seconds, producer))
    ends = np.load(ends_file)
    os.unlink(ends_file)
    d = delays(ends, logs)
    messages = np.mean([len(log) for log in logs]) if logs else 0
    p50, p95 = (float(np.percentile(d, 50)), float(np.percentile(d, 95))) if d.size else (float("nan"),) * 2
    print(f"{n_clients:>3} client(s): {len(ends):,} spans, {messages / (seconds + 2):.1f} messages/s per client, "
          f"delay P50 {p50:.0f} ms, P95 {p95:.0f} ms")  # fmt: skip
    return {"p50": p50, "p95": p95}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    seconds = 8 if args.quick else 20
    url = bench_database("aios_bench_live", fresh=True)
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "AIOS_CHANNELS_PREFIX": f"bench-live-{uuid.uuid4().hex[:6]}"}
    os.environ["AIOS_CHANNELS_PREFIX"] = env["AIOS_CHANNELS_PREFIX"]
    cookie = session_cookie(url)
    server = subprocess.Popen([sys.executable, "-m", "aios_site.serve", "--port", str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.2)
        one = scenario(1, url, cookie, port, seconds)
        hundred = scenario(100, url, cookie, port, seconds)
    finally:
        server.terminate()
        server.wait(timeout=30)
    emit({
        "bench": "live", "spans_per_s": RATE, "seconds": seconds,
        "p50_delay_ms_1": round(one["p50"]), "p95_delay_ms_1": round(one["p95"]),
        "p50_delay_ms_100": round(hundred["p50"]), "p95_delay_ms_100": round(hundred["p95"]), "targets": TARGETS,
    })  # fmt: skip


if __name__ == "__main__":
    main()
