"""The JSON API under /api/: django-ninja, session (with CSRF) or bearer-token auth.

Every app adds its router here. Errors are JSON with a 4xx status: 422 names the field,
409 is a conflict; nothing escapes as an HTML 500.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from uuid import UUID

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI, Router, Schema, Status
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.security import SessionAuth
from pydantic import Field

from agents import api as agents_api
from aios_core.access import ADMIN, user_roles
from aios_core.api import Page, paginate, require_role
from aios_core.errors import ConflictError
from aios_site.models import SCOPES, ApiToken
from aios_site.tokens import token_create, token_revoke
from observability import api as observability_api
from observability.models import AuditEvent

log = logging.getLogger(__name__)


def bearer_auth(request: HttpRequest) -> Any:
    """Tokens are checked (scope included) by ApiTokenMiddleware; this only reads its verdict."""
    return getattr(request, "api_token", None)


api = NinjaAPI(
    title="Ai:oS Control Plane API",
    version="1.0",
    urls_namespace="api",
    auth=[bearer_auth, SessionAuth()],
    docs_decorator=login_required,
)


# --- error shapes -------------------------------------------------------------------------------


def _field_errors(errors: list[dict[str, Any]]) -> list[dict[str, str]]:
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", []) if p not in ("body", "query", "path", "payload")]
        out.append({"field": ".".join(loc) or "body", "message": err.get("msg", "invalid")})
    return out


@api.exception_handler(NinjaValidationError)
def _on_invalid(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    fields = _field_errors(exc.errors)
    return api.create_response(
        request, {"error": "validation_error", "message": "Invalid input.", "fields": fields}, status=422
    )


@api.exception_handler(ValidationError)
def _on_service_invalid(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    fields = (
        [{"field": k, "message": " ".join(v)} for k, v in exc.message_dict.items()]
        if hasattr(exc, "error_dict")
        else [{"field": "body", "message": m} for m in exc.messages]
    )
    return api.create_response(
        request, {"error": "validation_error", "message": "Invalid input.", "fields": fields}, status=422
    )


@api.exception_handler(ConflictError)
def _on_conflict(request: HttpRequest, exc: ConflictError) -> HttpResponse:
    return api.create_response(request, {"error": "conflict", "message": exc.message, **exc.details}, status=409)


@api.exception_handler(AuthenticationError)
def _on_unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return api.create_response(
        request, {"error": "unauthenticated", "message": "Log in or send an API token."}, status=401
    )


@api.exception_handler(HttpError)
def _on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    code = {400: "bad_request", 403: "forbidden", 404: "not_found", 409: "conflict", 422: "validation_error"}
    return api.create_response(
        request, {"error": code.get(exc.status_code, "error"), "message": str(exc)}, status=exc.status_code
    )


@api.exception_handler(PermissionDenied)
def _on_forbidden(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    return api.create_response(request, {"error": "forbidden", "message": str(exc) or "Not allowed."}, status=403)


@api.exception_handler(Http404)
@api.exception_handler(ObjectDoesNotExist)
def _on_missing(request: HttpRequest, exc: Exception) -> HttpResponse:
    return api.create_response(request, {"error": "not_found", "message": "No such object."}, status=404)


@api.exception_handler(Exception)
def _on_crash(request: HttpRequest, exc: Exception) -> HttpResponse:
    log.exception("unhandled API error")
    return api.create_response(
        request, {"error": "internal_error", "message": "Something went wrong; it has been logged.",
                  "request_id": getattr(request, "request_id", None)}, status=500,
    )  # fmt: skip


# --- me and tokens --------------------------------------------------------------------------------

site = Router(tags=["account"])


class MeOut(Schema):
    username: str
    roles: list[str]
    is_admin: bool
    token: str | None = None
    scopes: list[str] | None = None


@site.get("/me", response=MeOut)
def me(request: HttpRequest) -> dict[str, Any]:
    user, token = request.user, getattr(request, "api_token", None)
    return {
        "username": user.get_username(),
        "roles": sorted(user_roles(user)),
        "is_admin": user.is_superuser or ADMIN in user_roles(user),
        "token": token.name if token else None,
        "scopes": token.scopes if token else None,
    }


class TokenIn(Schema):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[str] = Field(min_length=1)
    expires_at: datetime | None = None


class TokenOut(Schema):
    id: UUID
    name: str
    prefix: str
    scopes: list[str]
    status: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None


class TokenCreatedOut(TokenOut):
    token: str  # the secret, shown this once


def _session_only(request: HttpRequest) -> None:
    if getattr(request, "api_token", None) is not None:
        raise HttpError(403, "API tokens cannot manage API tokens; use the web UI or manage.py aios_token")


@site.get("/tokens", response=Page[TokenOut])
def tokens_list(request: HttpRequest, cursor: str | None = None, limit: int | None = None) -> dict[str, Any]:
    rows, nxt = paginate(ApiToken.objects.filter(user=request.user), cursor=cursor, limit=limit)
    return {"items": rows, "next": nxt}


@site.post("/tokens", response={201: TokenCreatedOut})
def tokens_create(request: HttpRequest, body: TokenIn) -> Status:
    _session_only(request)
    token, raw = token_create(user=request.user, name=body.name, scopes=body.scopes, expires_at=body.expires_at)
    return Status(201, {**TokenOut.from_orm(token).dict(), "token": raw})


@site.delete("/tokens/{token_id}", response=TokenOut)
def tokens_revoke(request: HttpRequest, token_id: UUID) -> ApiToken:
    _session_only(request)
    token = ApiToken.objects.get(pk=token_id, user=request.user)
    return token_revoke(token=token)


# --- audit log (admins) ---------------------------------------------------------------------------

audit = Router(tags=["audit"])


class AuditOut(Schema):
    seq: int
    created_at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    data: dict[str, Any]
    ip: str | None
    hash: str


@audit.get("/events", response=Page[AuditOut])
def audit_events(
    request: HttpRequest, action: str | None = None, actor: str | None = None,
    cursor: str | None = None, limit: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    require_role(request, ADMIN)
    qs = AuditEvent.objects.all()
    if action:
        qs = qs.filter(action__startswith=action)
    if actor:
        qs = qs.filter(actor=actor)
    rows, nxt = paginate(qs, cursor=cursor, limit=limit, field="seq")
    return {"items": rows, "next": nxt}


api.add_router("/", site)
api.add_router("/audit", audit)
api.add_router("/", observability_api.router)
api.add_router("/", agents_api.router)
api.add_router("/evaluation", "evaluation.api.router")

__all__ = ["SCOPES", "api"]
