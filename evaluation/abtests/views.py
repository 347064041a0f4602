"""A/B test pages: the list and the detail for viewers; create, start and stop for operators."""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from aios_core.access import OPERATOR, VIEWER, has_role, role_required
from aios_core.errors import ConflictError
from evaluation.abtests import selectors, services
from evaluation.abtests.analysis import BOOTSTRAP_RESAMPLES, analyse, chart_series, formatted
from evaluation.abtests.forms import ABTestForm, build_spec
from evaluation.models import ABTest


@role_required(VIEWER)
def abtest_list(request: HttpRequest) -> HttpResponse:
    context = {"tests": selectors.abtest_list()[:100], "can_run": has_role(request.user, OPERATOR)}
    return render(request, "evaluation/abtest_list.html", context)


@role_required(OPERATOR)
def abtest_create(request: HttpRequest) -> HttpResponse:
    """POST creates the test; POST with `preview` only sizes it, so the operator sees the sample size first."""
    form, preview = ABTestForm(request.POST or None), None
    if request.method == "POST" and form.is_valid() and (spec := build_spec(form)) is not None:
        try:
            if "preview" in request.POST:
                preview = services.abtest_preview(spec=spec)
            else:
                test = services.abtest_create(spec=spec, user=request.user)
                messages.success(request, f"A/B test {test.name} created: check the plan, then start it.")
                return redirect("evaluation-abtest-detail", pk=test.pk)
        except ValidationError as exc:
            _form_errors(form, exc)
    status = 422 if request.method == "POST" and form.errors else 200
    return render(request, "evaluation/abtest_form.html", {"form": form, "preview": preview}, status=status)


def _form_errors(form: ABTestForm, exc: ValidationError) -> None:
    for path, errors in exc.message_dict.items():
        field = form.field_for(path)
        for error in errors:
            form.add_error(field, error if field else f"{path}: {error}")


@role_required(VIEWER)
def abtest_detail(request: HttpRequest, pk: UUID) -> HttpResponse:
    test = selectors.get_abtest_for_user(request.user, pk)
    analysis = analyse(test)
    context = {"test": test, "analysis": analysis, "shown": formatted(test, analysis), "chart": chart_series(test),
               "bootstrap_resamples": BOOTSTRAP_RESAMPLES, "can_run": has_role(request.user, OPERATOR)}  # fmt: skip
    template = "evaluation/_abtest_results.html" if request.GET.get("partial") else "evaluation/abtest_detail.html"
    return render(request, template, context)


@require_POST
@role_required(OPERATOR)
def abtest_start(request: HttpRequest, pk: UUID) -> HttpResponse:
    test = selectors.get_abtest_for_user(request.user, pk)
    try:
        services.abtest_start(test=test, user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    except ConflictError as exc:
        messages.error(request, exc.message)
    return redirect("evaluation-abtest-detail", pk=test.pk)


@require_POST
@role_required(OPERATOR)
def abtest_stop(request: HttpRequest, pk: UUID) -> HttpResponse:
    test: ABTest = selectors.get_abtest_for_user(request.user, pk)
    try:
        services.abtest_stop(test=test, user=request.user, reason=request.POST.get("reason", ""))
    except ConflictError as exc:
        messages.error(request, exc.message)
    return redirect("evaluation-abtest-detail", pk=test.pk)
