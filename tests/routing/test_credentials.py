"""Provider keys an admin enters: encrypted at rest, never shown again, never logged or audited."""

from __future__ import annotations

import logging

import pytest

from observability.models import AuditEvent
from routing import catalog
from routing.models import ProviderCredential
from routing.secrets import decrypt
from tests.factories import make_user
from tests.helpers import login

pytestmark = pytest.mark.django_db

KEY = "sk-proj-TESTONLY-0123456789abcdefghijklmnop"


def test_an_admin_entered_key_is_encrypted_and_never_shown_or_logged_again(caplog: pytest.LogCaptureFixture) -> None:
    admin = login(make_user("admin", username="key-admin"))
    caplog.set_level(logging.DEBUG)
    response = admin.post("/admin/routing/providercredential/add/",
                          {"provider": "openai", "base_url": "", "api_key": KEY})  # fmt: skip
    assert response.status_code == 302
    row = ProviderCredential.objects.get(provider="openai")
    assert KEY.encode() not in bytes(row.encrypted_key) and decrypt(row.encrypted_key) == KEY
    assert row.key_hint == KEY[-4:]
    catalog.credentials.invalidate()
    assert catalog.credentials.get()["openai"].api_key == KEY  # usable by the providers, in memory
    # Never rendered again: not on the change page, not in the list.
    for url in (f"/admin/routing/providercredential/{row.pk}/change/", "/admin/routing/providercredential/"):
        page = admin.get(url).content.decode()
        assert KEY not in page and KEY[:12] not in page
    # Leaving the field empty keeps the key.
    admin.post(
        f"/admin/routing/providercredential/{row.pk}/change/", {"provider": "openai", "base_url": "", "api_key": ""}
    )
    row.refresh_from_db()
    assert decrypt(row.encrypted_key) == KEY
    # Audited without the key; nothing logged carries it.
    events = list(AuditEvent.objects.filter(action="provider_key.saved"))
    assert len(events) == 2 and all(KEY not in str(e.data) for e in events)
    assert events[0].data["key_hint"] == KEY[-4:]
    assert all(KEY not in record.getMessage() and KEY not in str(record.args) for record in caplog.records)
