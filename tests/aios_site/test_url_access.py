"""Every URL refuses an anonymous user, except a named public allowlist.

The URL list is walked from the resolver, so pages added later are covered automatically."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

PUBLIC = {
    "login",
    "password_reset",
    "password_reset_done",
    "password_reset_confirm",
    "password_reset_complete",
    "healthz",
    "readyz",
    "admin:login",  # Django admin's own login form (it only logs in staff)
}

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


def _refuses(resp) -> bool:  # type: ignore[no-untyped-def]
    if resp.status_code in (401, 403):
        return True
    return resp.status_code == 302 and "login" in resp["Location"]


@pytest.mark.django_db
def test_every_url_refuses_anonymous_users_except_the_public_allowlist() -> None:
    client = Client()
    public, checked = set(), 0
    for route, name in _walk(get_resolver().url_patterns):
        url = _concrete(route)
        for method in ("get", "post"):
            resp = getattr(client, method)(url)
            checked += 1
            if resp.status_code in (404, 405):
                continue  # nothing served: no such sample object, or the method is not offered
            if not _refuses(resp):
                public.add(name)
    assert checked > 50
    assert public == PUBLIC


def test_the_allowlist_names_real_urls() -> None:
    names = {name for _, name in _walk(get_resolver().url_patterns)}
    assert names >= PUBLIC
