"""Approvers hear about requests live: the notification socket's role groups, the toasts of
admin-only agents, and the navigation count rendered with the page."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from agents.approvals import approval_decide, waiting_count_for
from agents.services import policy_set, run_request
from aios_core.access import has_role
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


# --- the navigation count ------------------------------------------------------------------------

FIREWALL = {"agent": "security", "action": "firewall_enable", "payload": {}}
CHAOS = {"agent": "chaos", "action": "flaky", "payload": {"p_fail": 0}}


def _badge(user: Any) -> str:
    html = login(user).get("/runs/").content.decode()
    start = html.index('id="nav-approvals-count"')
    return html[start : html.index("</span>", start)]


@pytest.mark.django_db
def test_the_navigation_shows_the_requests_waiting_for_this_user_on_page_load(
    operator: Any, approver: Any, admin_user: Any, effects: dict[str, list[Any]]
) -> None:
    policy_set(agent="chaos", action="flaky", user=admin_user, requires_approval=True)
    run_request(user=operator, **FIREWALL)
    run_request(user=operator, **FIREWALL)
    run_request(user=make_user("admin"), **CHAOS)  # admin-only: approvers never see it
    both = make_user("approver")
    both.groups.add(*make_user("operator").groups.all())
    run_request(user=both, **FIREWALL)  # their own: not theirs to approve
    assert _badge(approver).endswith(">3") and "hidden" not in _badge(approver)
    assert _badge(admin_user).endswith(">4")
    assert _badge(both).endswith(">2")
    assert login(approver).get("/approvals/count/").json() == {"approvals": 3}
    assert login(operator).get("/approvals/count/").status_code == 403
    assert 'id="nav-approvals-count"' not in login(operator).get("/runs/").content.decode()


@pytest.mark.django_db
def test_a_request_this_approver_already_approved_no_longer_counts_for_them(
    operator: Any, approver: Any, admin_user: Any, effects: dict[str, list[Any]]
) -> None:
    policy_set(agent="security", action="firewall_enable", user=admin_user, approvals_required=2)
    run, _ = run_request(user=operator, **FIREWALL)
    approval_decide(request=run.approval, user=approver, approve=True)
    assert waiting_count_for(approver) == 0 and waiting_count_for(make_user("approver")) == 1
    assert _badge(approver).endswith(">") and " hidden" in _badge(approver)


@pytest.mark.django_db
def test_the_count_costs_one_query(approver: Any, django_assert_num_queries: Any) -> None:
    has_role(approver, "approver")  # roles are loaded once per request, by the navigation
    with django_assert_num_queries(1):
        waiting_count_for(approver)


@pytest.mark.django_db
def test_requests_of_admin_only_agents_are_announced_to_admins_only(
    admin_user: Any, effects: dict[str, list[Any]]
) -> None:
    policy_set(agent="chaos", action="flaky", user=admin_user, requires_approval=True)
    run_request(user=admin_user, **CHAOS)
    run_request(user=admin_user, **FIREWALL)
    groups = [group for group, _, _ in effects["notify"]]
    assert groups == ["role.admin", "role.approver"]
