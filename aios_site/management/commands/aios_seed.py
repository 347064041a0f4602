from django.conf import settings
from django.core.management.base import BaseCommand

from aios_site.accounts import admin_ensure
from aios_site.roles import sync_role_groups


class Command(BaseCommand):
    help = "Seed what a fresh installation needs: role groups and the admin user. Idempotent."

    def handle(self, *args: object, **opts: object) -> None:
        sync_role_groups()
        password_file = settings.VAR_DIR / "admin_password"
        _, password = admin_ensure(password_from_env=settings.AIOS_ADMIN_PASSWORD, password_file=password_file)
        if password and not settings.AIOS_ADMIN_PASSWORD:
            self.stdout.write(f"created user 'admin' with password: {password}  (kept in {password_file})")
        elif password:
            self.stdout.write("user 'admin' password set from AIOS_ADMIN_PASSWORD")
