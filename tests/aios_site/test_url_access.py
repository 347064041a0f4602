"""Every URL refuses an anonymous user, whatever the method, except a named public allowlist.

The URL list is walked from the resolver, so pages added later are covered automatically; the
gateway's raw ASGI paths (/v1/chat/completions, /v1/models: outside Django's resolver) are
read from the ASGI application itself, and /metrics is checked enabled."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver

PUBLIC = {
    "login",
    "password_reset",
    "password_reset_done",
    "password_reset_confirm",
    "password_reset_complete",
    "healthz",
    "readyz",
    # Django admin's own login form. It is only the form (LoginView with the admin template):
    # every other admin URL redirects here, and it logs in staff only. Asserted below.
    "admin:login",
}

# Routes that answer 404 to everyone (nothing to protect): django-ninja's root, which exists only
# so operations can reverse their prefix. Asserted to 404 for an admin as well.
SERVES_NOTHING = {"api:api-root"}

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
SAMPLES = {"int": "1", "uuid": str(uuid.uuid4()), "trace_id": uuid.uuid4().hex, "slug": "x", "str": "x", "path": "x/y"}
_CONVERTER = re.compile(r"<(?:(\w+):)?(\w+)>")


def _walk(patterns: list, prefix: str = "", ns: str = "") -> Iterator[tuple[str, str]]:
    for p in patterns:
        route = str(p.pattern)
        if isinstance(p, URLResolver):
            sub_ns = f"{ns}{p.namespace}:" if p.namespace else ns
            yield from _walk(p.url_patterns, prefix + route, sub_ns)
        elif isinstance(p, URLPattern):
            yield prefix + route, f"{ns}{p.name}" if p.name else prefix + route


def _concrete(route: str) -> str:
    route = route.lstrip("^").rstrip("$").replace("\\Z", "")
    route = _CONVERTER.sub(lambda m: SAMPLES.get(m.group(1) or "str", "x"), route)
    route = re.sub(r"\(\?P<\w+>[^)]*\)", "x", route)  # regex routes (admin)
    return "/" + route.replace("\\", "")


def _refuses(status: int, location: str = "") -> bool:
    if status in (401, 403):
        return True
    return status == 302 and "login" in location


def _asgi_paths() -> list[str]:
    """Paths the ASGI application answers before Django (the gateway)."""
    from aios_site.asgi import application

    http = application.application_mapping["http"]
    return list(getattr(http, "PATHS", ()))


async def _asgi_status(method: str, path: str) -> tuple[int, str]:
    from aios_site.asgi import application

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"testserver"), (b"content-type", b"application/json")],
        "server": ("testserver", 80), "client": ("127.0.0.1", 40000),
    }  # fmt: skip
    await application(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers = {k.decode().lower(): v.decode() for k, v in start.get("headers", [])}
    return start["status"], headers.get("location", "")


class Outcome:
    def __init__(self) -> None:
        self.public: set[str] = set()
        self.checked: dict[str, set[str]] = {}  # route name -> methods whose refusal was checked
        self.leaks: list[str] = []

    def record(self, name: str, method: str, status: int, location: str) -> None:
        self.checked.setdefault(name, set())
        if status in (404, 405):
            return  # not offered (405), or no such sample object (404): this method is not checked
        self.checked[name].add(method)
        if not _refuses(status, location):
            self.public.add(name)
            self.leaks.append(f"{method} {name} -> {status}")


@pytest.mark.django_db
@override_settings(AIOS_METRICS_TOKEN="metrics-secret")  # /metrics enabled: it must still refuse
def test_every_url_refuses_anonymous_users_whatever_the_method_except_the_public_allowlist() -> None:
    client = Client()
    outcome = Outcome()
    for route, name in _walk(get_resolver().url_patterns):
        url = _concrete(route)
        for method in METHODS:
            resp = client.generic(method, url, data=b"{}", content_type="application/json")
            outcome.record(name, method, resp.status_code, resp.get("Location", ""))
    for path in _asgi_paths():
        for method in METHODS:
            status, location = async_to_sync(_asgi_status)(method, path)
            outcome.record(f"asgi:{path}", method, status, location)

    never_checked = sorted(
        name for name, methods in outcome.checked.items() if not methods and name not in SERVES_NOTHING
    )
    assert not never_checked, f"no method of these routes could be checked (404/405 only): {never_checked}"
    assert outcome.public == PUBLIC, outcome.leaks
    assert {"asgi:/v1/chat/completions", "asgi:/v1/models", "obs-metrics"} <= outcome.checked.keys()
    assert "GET" in outcome.checked["obs-metrics"]
    # routes offering only DELETE / PUT are checked too (GET and POST alone never reached them)
    assert "DELETE" in outcome.checked["api:tokens_revoke"] and "PUT" in outcome.checked["api:policies_set"]
    assert len(outcome.checked) > 50


@pytest.mark.django_db
def test_the_admin_login_page_is_only_the_login_form() -> None:
    resp = Client().get("/admin/login/")
    assert resp.status_code == 200
    assert b'name="username"' in resp.content and b'name="password"' in resp.content
    assert Client().get("/admin/").status_code == 302  # everything else in the admin needs a login


@pytest.mark.django_db
def test_routes_that_serve_nothing_answer_404_even_to_an_admin() -> None:
    from tests.factories import make_user
    from tests.helpers import login

    client = login(make_user("admin"))
    routes = {name: route for route, name in _walk(get_resolver().url_patterns)}
    for name in SERVES_NOTHING:
        for method in METHODS:
            assert client.generic(method, _concrete(routes[name])).status_code in (404, 405), (method, name)


def test_the_allowlists_name_real_urls() -> None:
    names = {name for _, name in _walk(get_resolver().url_patterns)}
    assert names >= PUBLIC | SERVES_NOTHING
