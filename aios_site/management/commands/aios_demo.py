"""`manage.py aios_demo --rate 20 --duration 300`: real gateway calls and agent actions for the
dashboard (aios_site/demo.py). Run it next to `make up`."""

import asyncio

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Drive the running server with a realistic demo workload: gateway calls and agent actions."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--rate", type=float, default=20.0, help="operations per second")
        parser.add_argument("--duration", type=float, default=300.0, help="seconds")
        parser.add_argument("--actions", type=float, default=0.2, help="share of operations that are agent actions")
        parser.add_argument("--url", default=settings.AIOS_PUBLIC_URL, help="the running server (default: %(default)s)")
        parser.add_argument("--seed", type=int, default=None)

    def handle(self, *args: object, **opts: object) -> None:
        import httpx

        from aios_site.demo import run_demo

        rate, duration, url = float(opts["rate"]), float(opts["duration"]), str(opts["url"]).rstrip("/")  # type: ignore[arg-type]
        if rate <= 0 or duration <= 0 or not 0 <= float(opts["actions"]) <= 1:  # type: ignore[arg-type]
            raise CommandError("--rate and --duration must be positive, --actions between 0 and 1")
        self.stdout.write(f"demo: {rate:g} operations/s for {duration:g} s against {url} (Ctrl-C stops it)")
        try:
            stats = asyncio.run(
                run_demo(url=url, rate=rate, duration=duration, seed=opts["seed"],  # type: ignore[arg-type]
                         action_share=float(opts["actions"]))  # type: ignore[arg-type]
            )  # fmt: skip
        except KeyboardInterrupt:
            return
        except httpx.HTTPError as exc:
            raise CommandError(f"the server at {url} does not answer ({exc}): start it with `make up`") from exc
        for outcome, n in sorted(stats.items()):
            self.stdout.write(f"  {outcome}: {n}")
