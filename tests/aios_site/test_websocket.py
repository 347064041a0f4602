from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from aios_site.asgi import application
from tests.factories import make_user
from tests.helpers import login, subprocess_env

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://127.0.0.1")


def communicator(cookie: str | None = None, origin: tuple[bytes, bytes] = ORIGIN) -> WebsocketCommunicator:
    headers = [origin, (b"host", b"127.0.0.1")]
    if cookie:
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    return WebsocketCommunicator(application, "/ws/notifications/", headers=headers)


def session_cookie(user: Any) -> str:
    return login(user).cookies["sessionid"].value


def test_an_anonymous_socket_is_refused() -> None:
    async def run() -> tuple[bool, Any]:
        comm = communicator()
        connected, code = await comm.connect()
        await comm.disconnect()
        return connected, code

    connected, code = async_to_sync(run)()
    assert not connected and code == 4401


def test_a_cross_origin_socket_is_refused() -> None:
    cookie = session_cookie(make_user("viewer"))

    async def run() -> bool:
        comm = communicator(cookie, origin=(b"origin", b"http://evil.example"))
        connected, _ = await comm.connect()
        await comm.disconnect()
        return connected

    assert async_to_sync(run)() is False


def test_a_user_without_a_role_is_refused() -> None:
    cookie = session_cookie(make_user(None))

    async def run() -> Any:
        comm = communicator(cookie)
        connected, code = await comm.connect()
        await comm.disconnect()
        return connected, code

    assert async_to_sync(run)() == (False, 4403)


SENDER = """
import django; django.setup()
from aios_core.live import send_now
send_now("notify.all", "notify", {"toast": "hello from another process"})
"""


def test_a_logged_in_socket_receives_what_another_process_sends_through_redis() -> None:
    cookie = session_cookie(make_user("viewer"))

    async def run() -> Any:
        comm = communicator(cookie)
        connected, _ = await comm.connect()
        assert connected
        proc = subprocess.run([sys.executable, "-c", SENDER], env=subprocess_env(), capture_output=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        message = await comm.receive_json_from(timeout=10)
        await comm.disconnect()
        return message

    assert async_to_sync(run)() == {"toast": "hello from another process"}


def test_a_channel_layer_receive_outlives_an_idle_spell_longer_than_its_blocking_timeout() -> None:
    """A consumer waits on the layer; with nothing to read for longer than the layer's blocking
    pop (5 s), it must keep waiting, not die with a Redis read timeout."""
    import asyncio

    from channels.layers import get_channel_layer

    async def run() -> None:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        with pytest.raises(TimeoutError) as raised:
            await asyncio.wait_for(layer.receive(channel), timeout=layer.brpop_timeout + 2)
        assert type(raised.value) is TimeoutError  # ours, not redis.exceptions.TimeoutError

    async_to_sync(run)()
