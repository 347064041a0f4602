"""Approvers hear about requests live: the notification socket's role groups, the toasts of
admin-only agents, and the navigation count rendered with the page."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from aios_site.asgi import application
from tests.factories import make_user
from tests.helpers import login

HEADERS = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]


def _socket(cookie: str) -> WebsocketCommunicator:
    return WebsocketCommunicator(
        application, "/ws/notifications/", headers=[*HEADERS, (b"cookie", f"sessionid={cookie}".encode())]
    )


def _hears(user: Any, group: str) -> bool:
    """Whether `user`'s notification socket receives a message sent to `group`."""
    cookie = login(user).cookies["sessionid"].value

    async def run() -> bool:
        comm = _socket(cookie)
        connected, _ = await comm.connect()
        assert connected
        await get_channel_layer().group_send(group, {"type": "notify", "payload": {"toast": "hello"}})
        heard = not await comm.receive_nothing(timeout=1)
        message = await comm.receive_json_from() if heard else None
        await comm.disconnect()
        return message == {"toast": "hello"}

    return async_to_sync(run)()


@pytest.mark.django_db(transaction=True)
def test_an_admin_who_is_not_a_superuser_hears_what_approvers_hear() -> None:
    admin = make_user("admin")
    assert not admin.is_superuser
    assert _hears(admin, "role.approver")
    assert _hears(make_user("approver"), "role.approver")
    assert not _hears(make_user("viewer"), "role.approver")
