"""Helpers for the JSON API every app exposes under /api/: roles, cursor pagination, errors."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Generic, TypeVar

from django.db.models import Q, QuerySet
from django.http import HttpRequest, JsonResponse
from ninja import Schema
from ninja.errors import HttpError

from aios_core.access import has_role

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


class Page(Schema, Generic[T]):
    items: list[T]
    next: str | None = None


def require_role(request: HttpRequest, role: str) -> None:
    if not has_role(request.user, role):
        raise HttpError(403, f"this needs the {role} role")


def json_error(status: int, code: str, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": code, "message": message, **extra}, status=status)


# --- cursor pagination --------------------------------------------------------------------
# Keyset pagination on (ordering field, id), newest first: stable under concurrent inserts,
# and each page is an index range scan rather than an OFFSET that grows with the page number.


def _encode(value: Any, pk: Any) -> str:
    raw = json.dumps([value.isoformat() if hasattr(value, "isoformat") else value, str(pk)])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[Any, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value, pk = json.loads(base64.urlsafe_b64decode(padded))
        return value, pk
    except (binascii.Error, ValueError, TypeError) as exc:
        raise HttpError(422, "cursor: not a cursor this API issued") from exc


def paginate(
    queryset: QuerySet, *, cursor: str | None, limit: int | None, field: str = "created_at"
) -> tuple[list[Any], str | None]:
    """One page of `queryset`, newest first by `field` then id; returns (rows, next cursor)."""
    size = min(max(limit or DEFAULT_PAGE_SIZE, 1), MAX_PAGE_SIZE)
    qs = queryset.order_by(f"-{field}", "-pk")
    if cursor:
        value, pk = _decode(cursor)
        qs = qs.filter(Q(**{f"{field}__lt": value}) | Q(**{field: value, "pk__lt": pk}))
    rows = list(qs[: size + 1])
    if len(rows) <= size:
        return rows, None
    last = rows[size - 1]
    return rows[:size], _encode(getattr(last, field), last.pk)
