"""Workflows with a step of an admin-only agent (chaos) are admins' business only."""

from __future__ import annotations

from typing import Any

import pytest

from agents.selectors import get_workflow_for_user, workflows_for_user
from agents.services import workflow_start
from tests.helpers import login

pytestmark = pytest.mark.django_db

CHAOS = {"agent": "chaos", "action": "flaky", "payload": {"p_fail": 0}}
KERNEL = {"agent": "kernel", "action": "info", "payload": {}}


def test_workflows_with_admin_only_steps_are_listed_for_admins_only(
    viewer: Any, operator: Any, admin_user: Any, no_broker: list[str]
) -> None:
    plain = workflow_start(user=admin_user, steps=[KERNEL])
    mixed = workflow_start(user=admin_user, steps=[KERNEL, CHAOS])
    for user in (viewer, operator):
        assert list(workflows_for_user(user)) == [plain]
        page = login(user).get("/workflows/").content.decode()
        assert str(plain.pk) in page and str(mixed.pk) not in page
        listing = login(user).get("/api/workflows").json()["items"]
        assert [w["id"] for w in listing] == [str(plain.pk)]
        assert login(user).get(f"/api/workflows/{mixed.pk}").status_code == 404
        assert login(user).get(f"/workflows/{mixed.pk}/").status_code == 404
    assert set(workflows_for_user(admin_user)) == {plain, mixed}
    assert get_workflow_for_user(admin_user, mixed.pk) == mixed
    assert {w["id"] for w in login(admin_user).get("/api/workflows").json()["items"]} == {str(plain.pk), str(mixed.pk)}
