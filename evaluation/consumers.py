"""Live eval-run progress: authenticate, check the role, join the run's group, forward.

Mount with `path("ws/evaluation/runs/<int:run_id>/", EvalRunConsumer.as_asgi())` in aios_site/ws_urls.py."""

from __future__ import annotations

from typing import Any

from aios_core.access import VIEWER
from aios_core.live import RoleJsonConsumer


def run_group(run_id: int) -> str:
    return f"eval.run.{run_id}"


class EvalRunConsumer(RoleJsonConsumer):
    required_role = VIEWER

    def groups_for(self, user: Any, roles: frozenset[str]) -> list[str]:
        return [run_group(int(self.scope["url_route"]["kwargs"]["run_id"]))]

    async def eval_progress(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "eval.progress", "progress": event["payload"]})
