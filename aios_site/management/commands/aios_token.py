from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from aios_core.errors import ConflictError
from aios_site.models import SCOPES
from aios_site.tokens import token_create


class Command(BaseCommand):
    help = "Create an API token for USERNAME and print it (shown this once)."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("username")
        parser.add_argument("--scopes", nargs="+", default=["read"], choices=SCOPES)
        parser.add_argument("--name", default=None, help="default: cli-<timestamp>")
        parser.add_argument("--expires-days", type=int, default=None)

    def handle(self, *args: object, **opts: object) -> None:
        user = get_user_model().objects.filter(username=opts["username"]).first()
        if user is None:
            raise CommandError(f"no user named {opts['username']!r}")
        name = opts["name"] or f"cli-{timezone.now():%Y%m%d-%H%M%S}"
        expires = timezone.now() + timedelta(days=opts["expires_days"]) if opts["expires_days"] else None  # type: ignore[arg-type]
        try:
            _, raw = token_create(user=user, name=str(name), scopes=opts["scopes"], expires_at=expires)  # type: ignore[arg-type]
        except (ValidationError, ConflictError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(raw)
