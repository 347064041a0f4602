from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django import forms
from django.utils import timezone

from observability.models import SpanKind

RANGES = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}


class TraceFilterForm(forms.Form):
    range = forms.ChoiceField(
        choices=[("15m", "Last 15 min"), ("1h", "Last hour"), ("24h", "Last 24 h"), ("7d", "Last 7 days"),
                 ("custom", "Custom")], required=False, initial="24h",
    )  # fmt: skip
    since = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    until = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    agent = forms.CharField(required=False, max_length=100)
    model = forms.CharField(required=False, max_length=150)
    status = forms.ChoiceField(choices=[("", "Any status"), ("ok", "OK"), ("error", "Error")], required=False)
    kind = forms.ChoiceField(choices=[("", "Any kind"), *SpanKind.choices], required=False)
    q = forms.CharField(required=False, max_length=200, label="Text")
    # The viewer's time zone (IANA name, filled in by static/js/traces.js): the custom range's
    # datetime-local fields hold wall-clock times in it. Empty: UTC.
    tz = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)

    def clean_tz(self) -> ZoneInfo | None:
        name = self.cleaned_data.get("tz") or ""
        if not name:
            return None
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise forms.ValidationError("Unknown time zone.") from None

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        zone = data.get("tz")
        for field in ("since", "until"):
            if data.get(field) and zone is not None:  # read in the viewer's zone, not the server's
                data[field] = timezone.make_aware(
                    timezone.make_naive(data[field], timezone.get_current_timezone()), zone
                )
        since, until = data.get("since"), data.get("until")
        if data.get("range") == "custom":
            if not since:
                self.add_error("since", "Choose when the range starts.")
            if since and until and until <= since:
                self.add_error("until", "The end must be after the start.")
        return data

    def time_range(self) -> tuple[datetime | None, datetime | None]:
        data = self.cleaned_data
        chosen = data.get("range") or "24h"
        if chosen == "custom":
            return data.get("since"), data.get("until")
        return timezone.now() - RANGES[chosen], None
