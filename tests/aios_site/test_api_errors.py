"""The API answers bad input with JSON 4xx naming the field, and writes nothing."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client

from aios_site.models import ApiToken
from observability.models import AuditEvent
from tests.factories import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def client() -> Client:
    c = Client(enforce_csrf_checks=False)
    c.force_login(make_user("viewer"))
    return c


def post(client: Client, body: object) -> object:
    return client.post("/api/tokens", data=body, content_type="application/json")


def test_missing_field_is_422_naming_it(client: Client) -> None:
    resp = post(client, {"scopes": ["read"]})
    assert resp.status_code == 422
    assert resp.json()["fields"][0]["field"] == "name"


def test_service_rule_violations_are_422_naming_the_field(client: Client) -> None:
    before = AuditEvent.objects.count()
    resp = post(client, {"name": "x", "scopes": ["root"]})
    assert resp.status_code == 422
    assert [f["field"] for f in resp.json()["fields"]] == ["scopes"]
    assert ApiToken.objects.count() == 0
    assert AuditEvent.objects.count() == before


def test_duplicate_names_are_409(client: Client) -> None:
    assert post(client, {"name": "dup", "scopes": ["read"]}).status_code == 201
    resp = post(client, {"name": "dup", "scopes": ["read"]})
    assert resp.status_code == 409
    assert resp.json()["error"] == "conflict"
    assert ApiToken.objects.count() == 1


def test_malformed_json_is_a_json_4xx(client: Client) -> None:
    resp = client.post("/api/tokens", data="{not json", content_type="application/json")
    assert 400 <= resp.status_code < 500
    assert resp["Content-Type"].startswith("application/json")


def test_an_id_that_is_not_a_uuid_is_a_json_4xx(client: Client) -> None:
    resp = client.delete("/api/tokens/42")
    assert 400 <= resp.status_code < 500
    assert resp["Content-Type"].startswith("application/json")


def test_an_unknown_id_is_404_json(client: Client) -> None:
    resp = client.delete(f"/api/tokens/{uuid.uuid4()}")
    assert resp.status_code == 404
    assert resp.json()["error"] == "not_found"


@pytest.mark.parametrize("path", ["/api/no-such-endpoint", "/api/runs/", "/api/runs/not-a-uuid/extra"])
def test_a_path_no_route_matches_is_404_json_for_machine_clients(client: Client, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code == 404
    assert resp["Content-Type"].startswith("application/json")
    assert resp.json()["error"] == "not_found"


def test_a_page_no_route_matches_is_the_friendly_html_404(client: Client) -> None:
    resp = client.get("/no-such-page/")
    assert resp.status_code == 404
    assert resp["Content-Type"].startswith("text/html")


def test_session_writes_need_csrf() -> None:
    c = Client(enforce_csrf_checks=True)
    c.force_login(make_user("viewer"))
    resp = c.post("/api/tokens", data={"name": "x", "scopes": ["read"]}, content_type="application/json")
    assert resp.status_code in (401, 403)
    assert ApiToken.objects.count() == 0


def test_anonymous_api_calls_get_401_json() -> None:
    resp = Client().get("/api/me")
    assert resp.status_code == 401
    assert resp.json()["error"] == "unauthenticated"


def test_listings_are_cursor_paginated(client: Client) -> None:
    for i in range(5):
        post(client, {"name": f"t{i}", "scopes": ["read"]})
    first = client.get("/api/tokens?limit=2").json()
    assert len(first["items"]) == 2 and first["next"]
    seen = [t["name"] for t in first["items"]]
    cursor = first["next"]
    while cursor:
        page = client.get(f"/api/tokens?limit=2&cursor={cursor}").json()
        seen += [t["name"] for t in page["items"]]
        cursor = page["next"]
    assert sorted(seen) == [f"t{i}" for i in range(5)]
    assert client.get("/api/tokens?cursor=garbage").status_code == 422


def test_openapi_schema_is_served_to_logged_in_users(client: Client) -> None:
    resp = client.get("/api/openapi.json")
    assert resp.status_code == 200
    assert "/api/tokens" in resp.json()["paths"]
