"""API tokens: create, revoke, authenticate, and which scope a request needs."""

from __future__ import annotations

import copy
import hashlib
import secrets
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from aios_core.errors import ConflictError
from aios_site.models import SCOPES, ApiToken
from observability.audit import audit_append

TOKEN_PREFIX = "aios_"
LAST_USED_RESOLUTION = timedelta(minutes=1)  # at most one write per token per minute


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def token_create(
    *, user: Any, name: str, scopes: Iterable[str], expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """Create a token; returns it and its secret, which is never available again."""
    name = (name or "").strip()
    scopes = sorted(set(scopes))
    errors: dict[str, str] = {}
    if not name:
        errors["name"] = "A token needs a name."
    elif len(name) > 100:
        errors["name"] = "At most 100 characters."
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        errors["scopes"] = f"Choose one or more of {', '.join(SCOPES)}" + (
            f"; unknown: {', '.join(unknown)}" if unknown else "."
        )
    if expires_at is not None and expires_at <= timezone.now():
        errors["expires_at"] = "The expiry must be in the future."
    if errors:
        raise ValidationError(errors)

    prefix = secrets.token_hex(4)
    raw = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        if ApiToken.objects.filter(user=user, name=name, revoked_at__isnull=True).exists():
            raise ConflictError(f"You already have an active token named {name!r}.", field="name")
        token = ApiToken.objects.create(
            user=user, name=name, prefix=prefix, token_hash=hash_token(raw), scopes=scopes, expires_at=expires_at
        )
        audit_append(
            action="token.created", object_type="api_token", object_id=token.pk,
            data={"name": name, "owner": user.get_username(), "scopes": scopes,
                  "expires_at": expires_at.isoformat() if expires_at else None},
        )  # fmt: skip
    return token, raw


def token_revoke(*, token: ApiToken, via: str = "") -> ApiToken:
    """Revoke `token` (idempotent), audited. `via` names a path other than the UI (e.g. "cli")."""
    with transaction.atomic():
        locked = ApiToken.objects.select_for_update().get(pk=token.pk)
        if locked.revoked_at is None:
            locked.revoked_at = timezone.now()
            locked.save(update_fields=["revoked_at"])
            transaction.on_commit(lambda: forget_cached_token(locked.token_hash))
            data = {"name": locked.name, "owner": locked.user.get_username()}
            if via:
                data["via"] = via
            audit_append(action="token.revoked", object_type="api_token", object_id=locked.pk, data=data)
    return locked


def token_authenticate(raw: str) -> ApiToken | None:
    """The active token whose secret is `raw`, with its user loaded; None if there is none."""
    if not raw.startswith(TOKEN_PREFIX):
        return None
    token = ApiToken.objects.select_related("user").filter(token_hash=hash_token(raw)).first()
    if token is None or not token.is_active or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


class _ExpiringCache:
    """Token hash -> what a check found, kept `ttl_s` seconds in this process (misses too, so a
    flood of bad tokens costs one query each per period). Bounded: it is emptied past 10,000."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._items: dict[str, tuple[float, Any]] = {}

    def get(self, key: str) -> tuple[bool, Any]:
        hit = self._items.get(key)
        if hit is None or hit[0] <= time.monotonic():
            return False, None
        return True, hit[1]

    def put(self, key: str, value: Any) -> None:
        if len(self._items) > 10_000:
            self._items.clear()
        self._items[key] = (time.monotonic() + self.ttl_s, value)

    def pop(self, key: str) -> None:
        self._items.pop(key, None)

    def clear(self) -> None:
        self._items.clear()


# --- the API's token check --------------------------------------------------------------------------
# Every API request presents its token: checked against an in-process cache of API_CACHE_S
# (with the user, and the user's roles, as they were read), instead of two queries a request.
# A revocation takes effect at once in the process that made it, and within API_CACHE_S
# everywhere else; so do a deactivated account, a changed role and an expiry past due.
API_CACHE_S = 10.0
_api_cache = _ExpiringCache(API_CACHE_S)


def token_authenticate_cached(raw: str) -> ApiToken | None:
    """`token_authenticate` through the cache. Each call returns its own copies of the token and
    its user, so what one request sets on them never reaches another."""
    from aios_core.access import user_roles

    if not raw.startswith(TOKEN_PREFIX):
        return None
    key = hash_token(raw)
    found, cached = _api_cache.get(key)
    if not found:
        cached = token_authenticate(raw)
        if cached is not None:
            user_roles(cached.user)  # read once here; cached on the user, so on its copies too
        _api_cache.put(key, cached)
    if cached is None or not cached.is_active:  # an expiry passes without a reload
        return None
    token = copy.copy(cached)
    token.user = copy.copy(cached.user)
    return token


# Which scope a bearer-token request needs, by path prefix. Longest prefix wins.
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
_MACHINE_PREFIXES = {"/v1/traces": "ingest", "/v1/logs": "ingest", "/v1/metrics": "ingest", "/v1/": "gateway"}


def required_scope(path: str, method: str) -> str | None:
    """The scope a token needs for this request, or None if tokens are not accepted here."""
    for prefix, scope in sorted(_MACHINE_PREFIXES.items(), key=lambda kv: -len(kv[0])):
        if path.startswith(prefix):
            return scope
    if path.startswith("/api/"):
        return "read" if method in _SAFE_METHODS else "write"
    return None


def is_machine_path(path: str) -> bool:
    """Paths served only to API tokens (no session, no login redirect)."""
    return path.startswith("/v1/")


# --- the gateway's token check -----------------------------------------------------------------------
# The OpenAI-compatible gateway answers thousands of requests a second: it checks tokens against
# an in-process cache of 10 seconds (misses and unknown tokens included, so a flood of bad
# tokens costs one query each per 10 s). A revocation takes effect at once in the process that
# made it and within 10 seconds everywhere else.
GATEWAY_CACHE_S = 10.0
_gateway_cache = _ExpiringCache(GATEWAY_CACHE_S)


async def gateway_authenticate(raw: str) -> Any:
    from channels.db import database_sync_to_async

    from routing.gateway import GatewayCaller

    key = hash_token(raw)
    found, caller = _gateway_cache.get(key)
    if found:
        return caller
    token = await database_sync_to_async(token_authenticate)(raw)
    caller = GatewayCaller(token.user.get_username(), token.name, tuple(token.scopes)) if token else None
    _gateway_cache.put(key, caller)
    return caller


def forget_cached_token(token_hash: str) -> None:
    _gateway_cache.pop(token_hash)
    _api_cache.pop(token_hash)


def forget_cached_tokens() -> None:
    """Every process-cached token (tests: users and roles change between requests)."""
    _gateway_cache.clear()
    _api_cache.clear()
