"""Request context and access: request ids and access log, API tokens, login everywhere."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from django.contrib.auth.middleware import LoginRequiredMiddleware as DjangoLoginRequired
from django.http import HttpRequest, HttpResponse

from aios_core import context
from aios_core.api import json_error
from aios_site.tokens import is_machine_path, required_scope, token_authenticate_cached

access_log = logging.getLogger("aios.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

Handler = Callable[[HttpRequest], HttpResponse]


def _client_ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


class RequestContextMiddleware:
    """Gives each request an id (or keeps a sane incoming X-Request-ID), binds it to the log
    context, and writes one JSON access-log line per request."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        started = time.perf_counter()
        with context.bound(request_id=request_id, ip=_client_ip(request), user_id=None, username=None, api_token=None):
            response = self.get_response(request)
            response["X-Request-ID"] = request_id
            if request.path not in ("/healthz", "/readyz"):
                access_log.info(
                    "%s %s %s", request.method, request.path, response.status_code,
                    extra={"method": request.method, "path": request.path, "status": response.status_code,
                           "duration_ms": round((time.perf_counter() - started) * 1000, 2)},
                )  # fmt: skip
        return response


class ApiTokenMiddleware:
    """Authenticates `Authorization: Bearer <token>` on API and machine paths.

    A valid token stands for its user, limited to its scopes: the scope a path needs is
    decided here, once, for every app (aios_site.tokens.required_scope). Bearer requests
    carry no cookies, so CSRF does not apply to them. Machine paths (/v1/) take tokens only.
    """

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.api_token = None  # type: ignore[attr-defined]
        header = request.headers.get("Authorization", "")
        scope = required_scope(request.path, request.method or "GET")
        if scope is not None and header[:7].lower() == "bearer ":
            token = token_authenticate_cached(header[7:].strip())
            if token is None:
                return json_error(401, "invalid_token", "The API token is unknown, expired or revoked.")
            if not token.has_scope(scope):
                return json_error(403, "insufficient_scope", f"This token lacks the '{scope}' scope.", scope=scope)
            request.user = token.user
            request.api_token = token  # type: ignore[attr-defined]
            request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]
            context.update(api_token=token.name)
        elif is_machine_path(request.path):
            return json_error(401, "missing_token", "Send an API token: Authorization: Bearer <token>.")
        user = request.user
        if user.is_authenticated:
            context.update(user_id=user.pk, username=user.get_username())
        return self.get_response(request)


class LoginRequiredMiddleware(DjangoLoginRequired):
    """Every page requires login (Django's middleware) except the JSON surfaces, which
    answer 401 in JSON themselves rather than redirecting to an HTML login page."""

    JSON_PREFIXES = ("/api/", "/v1/", "/metrics")

    def process_view(self, request, view_func, view_args, view_kwargs):  # type: ignore[no-untyped-def]
        if request.path.startswith(self.JSON_PREFIXES):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)
