from __future__ import annotations

from typing import Any

import pytest

from agents.models import ActionRun
from observability.models import AuditEvent
from tests.agents.conftest import drain
from tests.helpers import login

pytestmark = pytest.mark.django_db


def test_the_pages_render_for_a_viewer(viewer: Any, operator: Any, no_broker: list[str]) -> None:
    from agents.services import run_request, workflow_start

    run, _ = run_request(agent="kernel", action="info", payload={}, user=operator)
    wf = workflow_start(user=operator, name="security_review")
    drain(no_broker)
    client = login(viewer)
    for url in ("/runs/", f"/runs/{run.pk}/", "/agents/", "/workflows/", f"/workflows/{wf.pk}/", "/schedules/"):
        resp = client.get(url)
        assert resp.status_code == 200, url
    assert b"kernel.info" in client.get("/runs/").content
    assert b"chaos" not in client.get("/agents/").content
    assert client.get("/agents/kernel/info/run/").status_code == 403  # viewers cannot run


def test_the_run_form_is_built_from_the_payload_schema(operator: Any, no_broker: list[str]) -> None:
    client = login(operator)
    page = client.get("/agents/networking/tcp_check/run/").content.decode()
    assert 'name="port"' in page and 'name="timeout_s"' in page and 'name="forensic"' in page
    bad = client.post("/agents/networking/tcp_check/run/", {"host": "127.0.0.1", "port": "70000", "timeout_s": "1"})
    assert bad.status_code == 200 and ActionRun.objects.count() == 0
    assert "70000" in bad.content.decode() or "less than or equal" in bad.content.decode()
    ok = client.post(
        "/agents/kernel/sysctl_read/run/", {"keys": "vm.swappiness, kernel.randomize_va_space", "forensic": "on"}
    )
    assert ok.status_code == 302
    run = ActionRun.objects.get()
    assert run.forensic and run.payload["keys"] == ["vm.swappiness", "kernel.randomize_va_space"]


def test_cancel_and_retry_buttons(operator: Any, no_broker: list[str]) -> None:
    from agents.services import run_request

    run, _ = run_request(agent="kernel", action="info", payload={}, user=operator)
    client = login(operator)
    assert client.post(f"/runs/{run.pk}/cancel/").status_code == 302
    run.refresh_from_db()
    assert run.status == "cancelled"
    resp = client.post(f"/runs/{run.pk}/retry/")
    assert resp.status_code == 302 and ActionRun.objects.count() == 2


def test_policy_overrides_in_the_admin_are_audited(admin_user: Any) -> None:
    client = login(admin_user)
    resp = client.post(
        "/admin/agents/actionpolicy/add/",
        {"agent": "kernel", "action": "modules", "enabled": "on", "max_attempts": "4"},
    )
    assert resp.status_code == 302, resp.content[:2000]
    event = AuditEvent.objects.get(action="agents.policy_changed")
    assert event.data["after"]["max_attempts"] == 4
