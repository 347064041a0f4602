import asyncio

from django.core.management.base import BaseCommand

from observability.demo import run_demo


class Command(BaseCommand):
    help = "Produce a realistic demo workload of agent actions and LLM calls (spans) for the dashboard."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--rate", type=float, default=20.0, help="actions per second")
        parser.add_argument("--duration", type=float, default=300.0, help="seconds")
        parser.add_argument("--seed", type=int, default=None)

    def handle(self, *args: object, **opts: object) -> None:
        rate, duration = float(opts["rate"]), float(opts["duration"])  # type: ignore[arg-type]
        self.stdout.write(f"demo: {rate:g} actions/s for {duration:g} s (Ctrl-C stops it)")
        try:
            n = asyncio.run(run_demo(rate=rate, duration=duration, seed=opts["seed"]))  # type: ignore[arg-type]
        except KeyboardInterrupt:
            return
        self.stdout.write(f"demo: {n} actions recorded")
