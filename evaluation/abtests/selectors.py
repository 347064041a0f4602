"""A/B test reads: the permission-checked getter every view and API uses, and the listing."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db.models import Count, Q, QuerySet
from django.http import Http404

from aios_core.access import VIEWER, has_role
from evaluation.models import ABTest


def get_abtest_for_user(user: Any, pk: UUID | str) -> ABTest:
    if not has_role(user, VIEWER):
        raise Http404  # the views' role_required refuses first; this guards other callers
    test = ABTest.objects.select_related("evaluator", "dataset", "created_by").filter(pk=pk).first()
    if test is None:
        raise Http404
    return test


def abtest_list() -> QuerySet[ABTest]:
    return ABTest.objects.select_related("evaluator", "dataset").annotate(
        n_a=Count("observations", filter=Q(observations__variant=0, observations__value__isnull=False)),
        n_b=Count("observations", filter=Q(observations__variant=1, observations__value__isnull=False)),
    )
