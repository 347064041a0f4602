"""The dashboard socket: access rules, snapshots, and live messages caused by other processes."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import time
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from aios_site.asgi import application
from tests.factories import make_user
from tests.helpers import login, subprocess_env

pytestmark = pytest.mark.django_db(transaction=True)


def communicator(cookie: str | None, window: str = "15m", origin: bytes = b"http://127.0.0.1") -> WebsocketCommunicator:
    headers = [(b"origin", origin), (b"host", b"127.0.0.1")]
    if cookie:
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    return WebsocketCommunicator(application, f"/ws/metrics/?window={window}", headers=headers)


def cookie_for(role: str | None) -> str:
    return login(make_user(role)).cookies["sessionid"].value


def test_an_anonymous_socket_is_refused() -> None:
    async def run() -> Any:
        comm = communicator(None)
        result = await comm.connect()
        await comm.disconnect()
        return result

    assert async_to_sync(run)() == (False, 4401)


def test_a_cross_origin_socket_is_refused() -> None:
    cookie = cookie_for("viewer")

    async def run() -> bool:
        comm = communicator(cookie, origin=b"http://attacker.example")
        connected, _ = await comm.connect()
        await comm.disconnect()
        return connected

    assert async_to_sync(run)() is False


def test_a_viewer_is_accepted_and_gets_the_window_first() -> None:
    cookie = cookie_for("viewer")

    async def run() -> dict[str, Any]:
        comm = communicator(cookie, window="1h")
        connected, _ = await comm.connect()
        assert connected
        first = await comm.receive_json_from(timeout=10)
        await comm.send_json_to({"action": "resync"})
        again = await comm.receive_json_from(timeout=10)
        await comm.disconnect()
        assert again["type"] == "snapshot"
        return first

    first = async_to_sync(run)()
    assert first["type"] == "snapshot" and first["window"] == "1h"
    assert len(first["series"]["t"]) == 60 and "summary" in first


WRITER = """
import django; django.setup()
from observability import get_observability
obs = get_observability()
for _ in range(25):
    with obs.trace_span("from.another.process", agent_name="kernel", kind="action"):
        pass
assert obs.flush(timeout=30)
"""


def test_spans_written_by_another_process_produce_a_message() -> None:
    cookie = cookie_for("viewer")

    async def run() -> dict[str, Any]:
        comm = communicator(cookie)
        connected, _ = await comm.connect()
        assert connected
        snapshot = await comm.receive_json_from(timeout=10)
        # In a thread: blocking this event loop for the writer's run starved the consumer's own
        # Redis reads, which then timed out and closed it (under load, the run takes seconds).
        proc = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-c", WRITER], env=subprocess_env(), capture_output=True, timeout=120
        )
        assert proc.returncode == 0, proc.stderr.decode()[-2000:]
        while True:  # heartbeats may come first; wait for the message that carries our spans
            message = await comm.receive_json_from(timeout=10)
            if message.get("type") == "update" and sum(message["series"]["calls"]) >= 25:
                break
        await comm.disconnect()
        assert message["seq"] > snapshot["seq"]
        return message

    message = async_to_sync(run)()
    assert message["window"] == "15m" and message["watermark"]
    assert len(message["series"]["t"]) == 2


def test_messages_are_coalesced_to_at_most_four_a_second() -> None:
    cookie = cookie_for("viewer")
    writer = WRITER.replace("range(25)", "range(4000)")

    async def run() -> list[float]:
        comm = communicator(cookie)
        await comm.connect()
        await comm.receive_json_from(timeout=10)
        proc = subprocess.Popen([sys.executable, "-c", writer], env=subprocess_env())
        stamps = []
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            try:  # read the queue directly: receive_*_from's timeout would cancel the consumer
                raw = await asyncio.wait_for(comm.output_queue.get(), timeout=1)
            except TimeoutError:
                continue
            if raw.get("type") == "websocket.send" and json.loads(raw["text"]).get("type") == "update":
                stamps.append(time.monotonic())
        proc.wait(timeout=120)
        await comm.disconnect()
        return stamps

    stamps = async_to_sync(run)()
    assert stamps, "no live message arrived"
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert all(g >= 0.2 for g in gaps), gaps  # TICK_S = 0.25 s, with scheduling slack
