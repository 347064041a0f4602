from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command

from aios_core.access import ROLES
from tests.factories import make_user
from tests.helpers import login

pytestmark = pytest.mark.django_db


def test_the_data_migration_creates_every_role_group_with_permissions() -> None:
    groups = {g.name: g for g in Group.objects.prefetch_related("permissions")}
    assert set(ROLES) <= set(groups)
    viewer_perms = {p.codename for p in groups["viewer"].permissions.all()}
    assert "view_auditevent" in viewer_perms
    assert not any(c.startswith(("add_", "change_", "delete_")) for c in viewer_perms)
    assert groups["admin"].permissions.count() > groups["viewer"].permissions.count()


@pytest.mark.parametrize(
    ("role", "url", "status"),
    [
        ("viewer", "/", 200),
        ("viewer", "/runs/", 200),
        ("viewer", "/approvals/", 403),
        ("approver", "/approvals/", 200),
        ("operator", "/approvals/", 403),
        ("annotator", "/traces/", 200),
        ("admin", "/approvals/", 200),
        ("viewer", "/admin/", 302),
        ("admin", "/admin/", 200),
    ],
)
def test_pages_answer_by_role(role: str, url: str, status: int) -> None:
    assert login(make_user(role)).get(url).status_code == status


def test_a_user_without_any_role_gets_the_friendly_403_page() -> None:
    resp = login(make_user(None)).get("/")
    assert resp.status_code == 403
    assert b"You don\xe2\x80\x99t have access" in resp.content


def test_the_navigation_shows_only_what_the_role_may_open() -> None:
    viewer_nav = login(make_user("viewer")).get("/").context["nav_items"]
    admin_nav = login(make_user("admin")).get("/").context["nav_items"]
    assert "Approvals" not in {i["label"] for i in viewer_nav}
    assert {i["label"] for i in admin_nav} == {
        "Overview", "Runs", "Approvals", "Traces", "Routing", "Cache", "Evaluation", "Admin"
    }  # fmt: skip


def test_createuser_command_creates_a_user_with_the_role(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("createuser", "dana", "--role", "approver")
    out = capsys.readouterr().out
    assert "password:" in out
    from django.contrib.auth import get_user_model

    dana = get_user_model().objects.get(username="dana")
    assert list(dana.groups.values_list("name", flat=True)) == ["approver"]


def test_createuser_refuses_an_existing_username() -> None:
    from django.core.management.base import CommandError

    make_user("viewer", username="erin")
    with pytest.raises(CommandError, match="already exists"):
        call_command("createuser", "erin", "--role", "viewer")


def test_login_logout_and_password_change_pages_work() -> None:
    from django.test import Client

    from tests.factories import PASSWORD

    user = make_user("viewer", username="frank")
    client = Client()
    resp = client.post("/accounts/login/", {"username": "frank", "password": PASSWORD})
    assert resp.status_code == 302 and resp["Location"] == "/"
    resp = client.post(
        "/accounts/password_change/",
        {
            "old_password": PASSWORD,
            "new_password1": "an-even-better-passphrase",
            "new_password2": "an-even-better-passphrase",
        },
    )
    assert resp.status_code == 302
    user.refresh_from_db()
    assert user.check_password("an-even-better-passphrase")
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/").status_code == 302
