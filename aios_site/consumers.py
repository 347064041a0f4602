"""Notifications to a user's browser: toasts and live counts, pushed by any app."""

from __future__ import annotations

from typing import Any

from aios_core.live import RoleJsonConsumer, role_group, user_group

BROADCAST_GROUP = "notify.all"


class NotificationConsumer(RoleJsonConsumer):
    required_role = "viewer"

    def groups_for(self, user: Any, roles: frozenset[str]) -> list[str]:
        return [BROADCAST_GROUP, user_group(user.pk), *(role_group(r) for r in sorted(roles))]

    async def notify(self, event: dict[str, Any]) -> None:
        await self.send_json(event["payload"])
