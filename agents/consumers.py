"""Live run status for the runs pages: authenticate, check the role, join, forward."""

from __future__ import annotations

from typing import Any

from aios_core.access import ADMIN
from aios_core.live import RoleJsonConsumer

RUNS_GROUP = "agents.runs"
RUNS_ADMIN_GROUP = "agents.runs.admin"  # runs of admin-only agents (chaos)


class RunsConsumer(RoleJsonConsumer):
    required_role = "viewer"

    def groups_for(self, user: Any, roles: frozenset[str]) -> list[str]:
        admin = user.is_superuser or ADMIN in roles
        return [RUNS_GROUP, RUNS_ADMIN_GROUP] if admin else [RUNS_GROUP]

    async def run_status(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "run.status", "run": event["payload"]})
