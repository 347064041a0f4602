"""The dashboard socket: `/ws/metrics/?window=1h` streams the live feed of one window.

On connect (and whenever the client asks, e.g. after a sequence gap) it sends the whole
window as a snapshot; after that only the newest points, coalesced server-side."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async

from aios_core.live import RoleJsonConsumer
from observability import live


class MetricsConsumer(RoleJsonConsumer):
    required_role = "viewer"

    def _window(self) -> str:
        query = parse_qs(self.scope.get("query_string", b"").decode())
        window = (query.get("window") or ["1h"])[0]
        return window if window in live.WINDOWS else "1h"

    def groups_for(self, user: Any, roles: frozenset[str]) -> list[str]:
        return [live.group_name(self._window())]

    async def connect(self) -> None:
        await super().connect()
        if getattr(self, "joined", None):  # accepted
            live.feed.attach()
            self.attached = True
            await self._send_snapshot()

    async def disconnect(self, code: int) -> None:
        if getattr(self, "attached", False):
            live.feed.detach()
        await super().disconnect(code)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("action") == "resync":
            await self._send_snapshot()

    async def _send_snapshot(self) -> None:
        snapshot = await database_sync_to_async(live.snapshot)(self._window())
        await self.send_json({"type": "snapshot", **snapshot})

    async def metrics_update(self, event: dict[str, Any]) -> None:
        await self.send_json(event["payload"])
