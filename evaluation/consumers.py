"""Live eval-run progress: authenticate, check the role, join the run's group, forward.

Mounted as `path("ws/evaluation/runs/<uuid:run_id>/", EvalRunConsumer.as_asgi())` in aios_site/ws_urls.py."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from aios_core.access import VIEWER
from aios_core.live import RoleJsonConsumer


def run_group(run_id: UUID) -> str:
    """By the run's public UUID (what the page's socket URL carries)."""
    return f"eval.run.{run_id.hex}"


class EvalRunConsumer(RoleJsonConsumer):
    required_role = VIEWER

    def groups_for(self, user: Any, roles: frozenset[str]) -> list[str]:
        return [run_group(UUID(str(self.scope["url_route"]["kwargs"]["run_id"])))]

    async def eval_progress(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "eval.progress", "progress": event["payload"]})
