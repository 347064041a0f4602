"""Site pages: the user's API tokens, and the friendly error pages."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from aios_core.errors import ConflictError
from aios_site.forms import TokenCreateForm
from aios_site.models import ApiToken
from aios_site.tokens import token_create, token_revoke


def tokens(request: HttpRequest) -> HttpResponse:
    """List the user's tokens and create one; the new secret is shown once, on this page."""
    form = TokenCreateForm(request.POST or None)
    created_secret = None
    if request.method == "POST" and form.is_valid():
        try:
            _, created_secret = token_create(user=request.user, **form.cleaned_data)
            form = TokenCreateForm()
        except ValidationError as exc:
            for field, errs in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errs)
        except ConflictError as exc:
            form.add_error("name", exc.message)
    rows = ApiToken.objects.filter(user=request.user)
    return render(request, "aios_site/tokens.html", {"form": form, "tokens": rows, "created_secret": created_secret})


@require_POST
def token_revoke_view(request: HttpRequest, token_id: str) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=token_id, user=request.user)
    token_revoke(token=token)
    messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("site-tokens")


def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "403.html", {"reason": str(exception or "")}, status=403)


# Machine clients (the API, the OpenAI-compatible gateway, OTLP ingest) get JSON errors even for a
# path no route matches, never an HTML page they cannot parse.
_MACHINE_PREFIXES = ("/api/", "/v1/")


def _for_machines(request: HttpRequest) -> bool:
    return request.path.startswith(_MACHINE_PREFIXES)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _for_machines(request):
        return JsonResponse({"error": "not_found", "message": f"no such endpoint: {request.path}"}, status=404)
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if _for_machines(request):
        return JsonResponse({"error": "server_error", "message": "internal error; it has been logged"}, status=500)
    return render(request, "500.html", status=500)
