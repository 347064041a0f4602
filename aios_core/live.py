"""Websocket plumbing: the authenticated consumer base and the one helper that sends events.

Events are sent on commit (never from inside an open transaction), so a client never hears
about a row it cannot read yet. The channel layer is at-most-once: consumers that draw
state must be able to re-read it from the database.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from django.db import transaction

from aios_core.access import ADMIN, ROLES, has_role, user_roles

# Close codes in the 4000 private range, mirroring HTTP.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


def send_now(group: str, event_type: str, payload: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(group, {"type": event_type, "payload": payload})


def send_on_commit(group: str, event_type: str, payload: dict[str, Any]) -> None:
    """Send `payload` to `group` once the current transaction commits (at once if none)."""
    # robust: a channel layer that is down must not fail the request (or skip later on-commit
    # hooks such as task publishing) after its transaction already committed.
    transaction.on_commit(lambda: send_now(group, event_type, payload), robust=True)


def role_group(role: str) -> str:
    return f"role.{role}"


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def group_roles(user: Any) -> frozenset[str]:
    """The roles whose groups `user`'s sockets join. Admins (group or superuser) pass every role
    check (`has_role`), so they join every role group: whatever an approver hears, they hear."""
    roles = user_roles(user)
    return frozenset(ROLES) if user.is_superuser or ADMIN in roles else roles


class RoleJsonConsumer(AsyncJsonWebsocketConsumer):
    """Accepts only logged-in, active users holding `required_role`; joins `groups_for`."""

    required_role: str = "viewer"

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        allowed, roles = await database_sync_to_async(self._check)(user)
        if not allowed:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.joined = self.groups_for(user, roles)
        for group in self.joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    def _check(self, user: Any) -> tuple[bool, frozenset[str]]:
        return has_role(user, self.required_role), group_roles(user)

    def groups_for(self, user: Any, roles: frozenset[str]) -> list[str]:
        return []

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Clients only listen; anything they send is ignored."""
