from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from aios_site.models import ApiToken
from aios_site.tokens import token_create, token_revoke
from tests.factories import make_user
from tests.helpers import login

pytestmark = pytest.mark.django_db


def bearer(raw: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def test_a_valid_token_authenticates_as_its_user() -> None:
    user = make_user("operator", username="ops-bot")
    _, raw = token_create(user=user, name="ci", scopes=["read"])
    resp = Client().get("/api/me", **bearer(raw))
    assert resp.status_code == 200
    assert resp.json() == {
        "username": "ops-bot",
        "roles": ["operator"],
        "is_admin": False,
        "token": "ci",
        "scopes": ["read"],
    }
    assert ApiToken.objects.get(name="ci").last_used_at is not None


def test_only_the_hash_is_stored() -> None:
    token, raw = token_create(user=make_user(), name="x", scopes=["read"])
    stored = ApiToken.objects.filter(pk=token.pk).values()[0]
    assert raw not in json.dumps(stored, default=str)


@pytest.mark.parametrize("raw", ["aios_deadbeef_not-a-real-token", "nonsense", ""])
def test_a_wrong_token_gets_401_json(raw: str) -> None:
    resp = Client().get("/api/me", **bearer(raw))
    assert resp.status_code == 401
    assert resp["Content-Type"] == "application/json"


def test_a_revoked_token_gets_401() -> None:
    token, raw = token_create(user=make_user(), name="old", scopes=["read"])
    token_revoke(token=token)
    resp = Client().get("/api/me", **bearer(raw))
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_token"


def test_an_expired_token_gets_401() -> None:
    token, raw = token_create(
        user=make_user(), name="brief", scopes=["read"], expires_at=timezone.now() + timedelta(seconds=5)
    )
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert Client().get("/api/me", **bearer(raw)).status_code == 401


def test_a_token_of_a_deactivated_user_gets_401() -> None:
    user = make_user()
    _, raw = token_create(user=user, name="t", scopes=["read"])
    user.is_active = False
    user.save()
    assert Client().get("/api/me", **bearer(raw)).status_code == 401


def test_scopes_limit_what_a_token_may_do() -> None:
    _, read_only = token_create(user=make_user(), name="r", scopes=["read"])
    resp = Client().post("/api/tokens", data={}, content_type="application/json", **bearer(read_only))
    assert resp.status_code == 403
    assert resp.json() == {
        "error": "insufficient_scope",
        "message": "This token lacks the 'write' scope.",
        "scope": "write",
    }
    resp = Client().post("/v1/chat/completions", data={}, content_type="application/json", **bearer(read_only))
    assert resp.status_code == 403 and resp.json()["scope"] == "gateway"


def test_machine_endpoints_demand_a_token_even_from_a_logged_in_browser() -> None:
    resp = login(make_user("admin")).post("/v1/traces", data=b"", content_type="application/x-protobuf")
    assert resp.status_code == 401
    assert resp.json()["error"] == "missing_token"


def test_a_token_cannot_mint_tokens() -> None:
    _, raw = token_create(user=make_user(), name="w", scopes=["read", "write"])
    resp = Client().post(
        "/api/tokens", data={"name": "n", "scopes": ["read"]}, content_type="application/json", **bearer(raw)
    )
    assert resp.status_code == 403
    assert ApiToken.objects.count() == 1


def test_a_logged_in_user_creates_lists_and_revokes_tokens_in_the_ui() -> None:
    user = make_user("viewer")
    client = login(user)
    resp = client.post("/account/tokens/", {"name": "grafana", "scopes": ["read"]})
    assert resp.status_code == 200
    secret = resp.context["created_secret"]
    assert secret.startswith("aios_") and secret.encode() in resp.content
    token = ApiToken.objects.get(user=user, name="grafana")
    listing = client.get("/account/tokens/")
    assert secret.encode() not in listing.content  # shown once
    assert b"grafana" in listing.content
    assert client.post(f"/account/tokens/{token.pk}/revoke/").status_code == 302
    token.refresh_from_db()
    assert token.status == "revoked"


def test_the_ui_shows_form_errors_and_writes_nothing_for_bad_input() -> None:
    client = login(make_user("viewer"))
    resp = client.post("/account/tokens/", {"name": "", "scopes": ["sudo"]})
    assert resp.status_code == 200
    assert resp.context["form"].errors.keys() >= {"name", "scopes"}
    assert ApiToken.objects.count() == 0


def test_aios_token_command_prints_a_working_token(capsys: pytest.CaptureFixture[str]) -> None:
    make_user("viewer", username="scripted")
    call_command("aios_token", "scripted", "--scopes", "read", "ingest")
    raw = capsys.readouterr().out.strip()
    assert Client().get("/api/me", **bearer(raw)).json()["scopes"] == ["ingest", "read"]


def test_a_user_cannot_revoke_someone_elses_token() -> None:
    token, _ = token_create(user=make_user(), name="theirs", scopes=["read"])
    resp = login(make_user()).post(f"/account/tokens/{token.pk}/revoke/")
    assert resp.status_code == 404
    token.refresh_from_db()
    assert token.status == "active"


def test_aios_token_command_lists_and_revokes_a_token_by_name_audited(capsys: pytest.CaptureFixture[str]) -> None:
    from observability.models import AuditEvent

    user = make_user("viewer", username="scripted")
    call_command("aios_token", "scripted", "--name", "grafana", "--scopes", "read")
    raw = capsys.readouterr().out.strip()
    call_command("aios_token", "scripted", "--list")
    listing = capsys.readouterr().out
    assert "grafana" in listing and "active" in listing and raw not in listing

    call_command("aios_token", "scripted", "--revoke", "grafana")
    assert "revoked grafana" in capsys.readouterr().out
    assert Client().get("/api/me", **bearer(raw)).status_code == 401
    token = ApiToken.objects.get(user=user, name="grafana")
    event = AuditEvent.objects.get(action="token.revoked", object_id=str(token.pk))
    assert event.data == {"name": "grafana", "owner": "scripted", "via": "cli"}
    call_command("aios_token", "scripted", "--list")
    assert "revoked" in capsys.readouterr().out


def test_aios_token_command_refuses_to_revoke_an_unknown_name() -> None:
    make_user("viewer", username="scripted")
    with pytest.raises(CommandError, match="no active token named 'nope'"):
        call_command("aios_token", "scripted", "--revoke", "nope")
