from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from aios_core.access import ROLES
from aios_site.accounts import user_create


class Command(BaseCommand):
    help = "Create a user with a role, for scripts. Prints the password if it was generated."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=ROLES)
        parser.add_argument("--password", help="default: generated and printed once")
        parser.add_argument("--email", default="")

    def handle(self, *args: object, **opts: object) -> None:
        try:
            user, password = user_create(
                username=str(opts["username"]), role=str(opts["role"]),
                password=opts["password"] or None, email=str(opts["email"]),  # type: ignore[arg-type]
            )  # fmt: skip
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(f"created {user.username} with role {opts['role']}")
        if not opts["password"]:
            self.stdout.write(f"password: {password}")
