from django.core.management.base import BaseCommand, CommandError

from observability.audit import audit_verify


class Command(BaseCommand):
    help = "Walk the audit log's hash chain and name the first broken row."

    def handle(self, *args: object, **options: object) -> None:
        report = audit_verify()
        if not report.ok:
            where = f"event #{report.broken_seq}" + (f" (id {report.broken_id})" if report.broken_id else "")
            raise CommandError(
                f"audit chain broken at {where}: {report.reason} ({report.checked} events verified before it)"
            )
        self.stdout.write(f"audit chain OK: {report.checked} events verified")
