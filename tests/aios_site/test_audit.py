from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client

from observability.audit import audit_append, audit_verify
from observability.models import AppendOnlyError, AuditEvent
from tests.factories import PASSWORD, make_user
from tests.helpers import login

pytestmark = pytest.mark.django_db


def actions() -> list[str]:
    return list(AuditEvent.objects.order_by("seq").values_list("action", flat=True))


def test_logins_failed_logins_and_logouts_are_audited() -> None:
    make_user("viewer", username="gail")
    client = Client()
    client.post("/accounts/login/", {"username": "gail", "password": "wrong"})
    client.post("/accounts/login/", {"username": "gail", "password": PASSWORD})
    client.post("/accounts/logout/")
    tail = actions()[-3:]
    assert tail == ["auth.login_failed", "auth.login", "auth.logout"]
    failed = AuditEvent.objects.get(action="auth.login_failed")
    assert failed.data == {"username": "gail"}
    assert "wrong" not in str(failed.data)


def test_token_creation_and_revocation_are_audited() -> None:
    client = login(make_user("viewer"))
    client.post("/account/tokens/", {"name": "ci", "scopes": ["read"]})
    token_id = AuditEvent.objects.get(action="token.created").object_id
    client.post(f"/account/tokens/{token_id}/revoke/")
    assert AuditEvent.objects.get(action="token.revoked").object_id == token_id


def test_role_changes_are_audited_with_the_actor() -> None:
    target = make_user(None, username="hank")
    admin = make_user("admin", username="root-admin")
    client = login(admin)
    approver = Group.objects.get(name="approver")
    resp = client.post(
        f"/admin/auth/user/{target.pk}/change/",
        {
            "username": "hank",
            "groups": [approver.pk],
            "is_active": "on",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        },
    )
    assert resp.status_code == 302, resp.content[:2000]
    event = AuditEvent.objects.filter(action="auth.roles_added").latest("seq")
    assert event.data == {"user": "hank", "roles": ["approver"]}
    assert event.actor == "root-admin"


def test_the_audit_log_refuses_changes_through_the_orm() -> None:
    event = audit_append(action="test.event")
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(action="x")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()


def test_the_database_refuses_updates_even_in_raw_sql() -> None:
    from django.db import DatabaseError, transaction

    event = audit_append(action="test.event")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cur:
        cur.execute("UPDATE observability_auditevent SET action = 'x' WHERE id = %s", [event.pk])


def _tamper(sql: str, params: list[object]) -> None:
    """What an attacker with the table owner's rights could do: switch the trigger off."""
    with connection.cursor() as cur:
        cur.execute("ALTER TABLE observability_auditevent DISABLE TRIGGER USER")
        cur.execute(sql, params)
        cur.execute("ALTER TABLE observability_auditevent ENABLE TRIGGER USER")


def _chain(n: int) -> list[AuditEvent]:
    return [audit_append(action="test.event", data={"i": i}) for i in range(n)]


def test_audit_verify_passes_an_intact_chain(capsys: pytest.CaptureFixture[str]) -> None:
    _chain(5)
    call_command("audit_verify")
    assert "audit chain OK" in capsys.readouterr().out


def test_audit_verify_names_an_edited_row() -> None:
    events = _chain(5)
    _tamper("UPDATE observability_auditevent SET data = '{\"i\": 99}' WHERE id = %s", [events[2].pk])
    report = audit_verify()
    assert not report.ok and report.broken_seq == events[2].seq
    with pytest.raises(CommandError, match=f"event #{events[2].seq}"):
        call_command("audit_verify")


def test_audit_verify_names_a_deleted_row() -> None:
    events = _chain(5)
    _tamper("DELETE FROM observability_auditevent WHERE id = %s", [events[1].pk])
    report = audit_verify()
    assert not report.ok and report.broken_seq == events[1].seq
    assert "missing" in report.reason


def test_audit_verify_notices_the_newest_rows_deleted() -> None:
    events = _chain(3)
    _tamper("DELETE FROM observability_auditevent WHERE id = %s", [events[-1].pk])
    report = audit_verify()
    assert not report.ok and "head" in report.reason


def test_a_rehashed_forgery_still_breaks_the_link_to_the_next_row() -> None:
    from observability.audit import compute_hash

    events = _chain(3)
    forged = AuditEvent.objects.get(pk=events[0].pk)
    forged.data = {"i": "forged"}
    _tamper("UPDATE observability_auditevent SET data = %s, hash = %s WHERE id = %s",
            ['{"i": "forged"}', compute_hash(forged), forged.pk])  # fmt: skip
    report = audit_verify()
    assert not report.ok and report.broken_seq == events[1].seq


def test_admins_browse_the_audit_log_in_the_admin_and_the_api() -> None:
    audit_append(action="test.event", data={"k": "v"})
    client = login(make_user("admin"))
    assert client.get("/admin/observability/auditevent/").status_code == 200
    assert client.get("/admin/observability/auditevent/add/").status_code == 403
    items = client.get("/api/audit/events?action=test.").json()["items"]
    assert items[0]["action"] == "test.event" and items[0]["data"] == {"k": "v"}
    assert login(make_user("viewer")).get("/api/audit/events").status_code == 403
