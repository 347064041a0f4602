from django.contrib import admin
from django.http import HttpRequest

from observability.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Browse and filter the audit log. Nobody adds, edits or deletes here: it is append-only."""

    list_display = ("seq", "created_at", "actor", "action", "object_type", "object_id", "ip")
    list_filter = ("action", "object_type", ("created_at", admin.DateFieldListFilter))
    search_fields = ("actor", "action", "object_id", "request_id")
    date_hierarchy = "created_at"
    ordering = ("-seq",)
    readonly_fields = [f.name for f in AuditEvent._meta.fields]
    list_per_page = 100

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
