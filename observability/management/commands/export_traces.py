from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime, parse_duration

from observability.exporting import export_traces


def _when(text: str | None):  # type: ignore[no-untyped-def]
    """An ISO date/time, or a duration ago such as '2h', '30m', '7d'."""
    if not text:
        return None
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    if text[-1] in units and text[:-1].isdigit():
        return timezone.now() - timedelta(**{units[text[-1]]: int(text[:-1])})
    parsed = parse_datetime(text)
    if parsed is None and parse_duration(text):
        return timezone.now() - parse_duration(text)
    if parsed is None:
        raise CommandError(f"not a date/time or duration: {text!r}")
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)


class Command(BaseCommand):
    help = "Export traces with their spans as JSON lines (or one JSON document) to stdout or a file."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--since", help="ISO date/time or duration ago (e.g. 24h)")
        parser.add_argument("--until", help="ISO date/time or duration ago")
        parser.add_argument("--format", choices=["ndjson", "json"], default="ndjson")
        parser.add_argument("--output", "-o", help="file (default: stdout)")

    def handle(self, *args: object, **opts: object) -> None:
        since, until = _when(opts["since"]), _when(opts["until"])  # type: ignore[arg-type]
        if opts["output"]:
            with open(str(opts["output"]), "w") as fh:
                n = export_traces(fh, since=since, until=until, fmt=str(opts["format"]))
        else:
            n = export_traces(self.stdout._out, since=since, until=until, fmt=str(opts["format"]))
        self.stderr.write(f"exported {n} traces")
