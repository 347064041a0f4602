"""Every URL. Pages require login (LoginRequiredMiddleware); the public ones are marked
`login_not_required` and listed in tests/aios_site/test_url_access.py."""

from django.contrib import admin
from django.urls import include, path

from aios_site import health, views
from aios_site.api import api

handler403 = "aios_site.views.forbidden"
handler404 = "aios_site.views.not_found"
handler500 = "aios_site.views.server_error"

admin.site.site_header = "Ai:oS administration"
admin.site.site_title = "Ai:oS admin"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("account/tokens/", views.tokens, name="site-tokens"),
    path("account/tokens/<uuid:token_id>/revoke/", views.token_revoke_view, name="site-token-revoke"),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    # each app's urls.py spells out its own prefixes (URL lists grouped by prefix)
    path("", include("observability.urls")),
    path("", include("agents.urls")),
    path("", include("routing.urls")),
    path("", include("evaluation.urls")),
]
