from __future__ import annotations

import uuid
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.auth import AuthMiddlewareStack
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.urls import path

from evaluation.consumers import EvalRunConsumer, run_group
from tests.factories import make_user
from tests.helpers import login

pytestmark = pytest.mark.django_db(transaction=True)

# The consumer as aios_site/ws_urls.py would mount it.
app = AuthMiddlewareStack(URLRouter([path("ws/evaluation/runs/<uuid:run_id>/", EvalRunConsumer.as_asgi())]))
RUN = uuid.uuid4()


def _communicator(user: Any) -> WebsocketCommunicator:
    headers = [(b"host", b"127.0.0.1")]
    if user is not None:
        headers.append((b"cookie", f"sessionid={login(user).cookies['sessionid'].value}".encode()))
    return WebsocketCommunicator(app, f"/ws/evaluation/runs/{RUN}/", headers=headers)


def test_a_viewer_hears_the_progress_of_the_run_they_watch() -> None:
    comm = _communicator(make_user("viewer"))

    async def run() -> Any:
        connected, _ = await comm.connect()
        assert connected
        # What aios_core.live.send_on_commit does once the service's transaction commits.
        await get_channel_layer().group_send(run_group(RUN), {"type": "eval.progress", "payload": {"items_done": 3}})
        message = await comm.receive_json_from(timeout=3)
        await comm.disconnect()
        return message

    assert async_to_sync(run)() == {"type": "eval.progress", "progress": {"items_done": 3}}


def test_an_anonymous_socket_is_refused() -> None:
    async def run() -> Any:
        comm = _communicator(None)
        connected, code = await comm.connect()
        await comm.disconnect()
        return connected, code

    assert async_to_sync(run)() == (False, 4401)
