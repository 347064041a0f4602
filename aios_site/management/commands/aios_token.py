"""`manage.py aios_token USERNAME`: create (default), list or revoke a user's API tokens.

    aios_token dana --scopes read write        # prints the new token, once
    aios_token dana --list                     # name, prefix, scopes, status, last use
    aios_token dana --revoke grafana           # revokes the active token named "grafana"

Creation and revocation go through the same services as the UI, so they are audited alike.
"""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from aios_core.errors import ConflictError
from aios_site.models import SCOPES, ApiToken
from aios_site.tokens import token_create, token_revoke


class Command(BaseCommand):
    help = "Create an API token for USERNAME and print it (shown this once); or --list / --revoke NAME."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("username")
        action = parser.add_mutually_exclusive_group()
        action.add_argument("--list", action="store_true", help="list the user's tokens (never their secrets)")
        action.add_argument("--revoke", metavar="NAME", help="revoke the user's active token named NAME")
        parser.add_argument("--scopes", nargs="+", default=["read"], choices=SCOPES)
        parser.add_argument("--name", default=None, help="default: cli-<timestamp>")
        parser.add_argument("--expires-days", type=int, default=None)

    def handle(self, *args: object, **opts: object) -> None:
        user = get_user_model().objects.filter(username=opts["username"]).first()
        if user is None:
            raise CommandError(f"no user named {opts['username']!r}")
        if opts["list"]:
            self._list(user)
        elif opts["revoke"]:
            self._revoke(user, str(opts["revoke"]))
        else:
            self._create(user, opts)

    def _create(self, user: object, opts: dict[str, object]) -> None:
        name = opts["name"] or f"cli-{timezone.now():%Y%m%d-%H%M%S}"
        expires = timezone.now() + timedelta(days=opts["expires_days"]) if opts["expires_days"] else None  # type: ignore[arg-type]
        try:
            _, raw = token_create(user=user, name=str(name), scopes=opts["scopes"], expires_at=expires)  # type: ignore[arg-type]
        except (ValidationError, ConflictError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(raw)

    def _revoke(self, user: object, name: str) -> None:
        token = ApiToken.objects.filter(user=user, name=name, revoked_at__isnull=True).first()
        if token is None:
            raise CommandError(f"{user} has no active token named {name!r} (see --list)")
        token_revoke(token=token, via="cli")
        self.stdout.write(f"revoked {token.name} ({token.prefix}…)")

    def _list(self, user: object) -> None:
        tokens = ApiToken.objects.filter(user=user).order_by("-created_at")
        if not tokens:
            self.stdout.write(f"{user} has no API tokens")
            return
        self.stdout.write(f"{'NAME':30} {'PREFIX':10} {'STATUS':8} {'SCOPES':26} {'CREATED':17} LAST USED")
        for t in tokens:
            used = f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never"
            self.stdout.write(
                f"{t.name:30} {t.prefix:10} {t.status:8} {','.join(t.scopes):26} {t.created_at:%Y-%m-%d %H:%M} {used}"
            )
