"""The demo workload behind `manage.py aios_demo` (`make demo`): real traffic for the dashboard.

Everything goes through the paths production traffic takes, so every span is a real one:

- **Chat completions over HTTP** to the running server's gateway (`POST /v1/chat/completions`,
  `model: "auto"`), with the API token of a `demo` user, so cost by user and token shows who
  caused them. About half the requests are deterministic (temperature 0: cacheable): a few
  popular questions come back again and again (the exact cache answers them), some come back
  reworded (the semantic cache may), the rest are new (long-tail prompts with their own
  numbers and names). The other half sample at temperature 0.7 and bypass the cache; a few
  are streamed. So the hit rate settles somewhere in between instead of reaching 100 %.
- **Agent actions** through the agents service layer (`agents.services.run_request`), run by
  the Celery worker: read-only surveys (forensic) requested by the demo user, and fault
  injection (`chaos.flaky`, `chaos.gated`: admin-only agents, requested as the system) that
  fails, retries and trips validation gates.

It needs the server and a worker running (`make up`); it lives in aios_site because it drives
routing (over HTTP) and agents (through their services).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

DEMO_USER = "demo"
DEMO_TOKEN = "demo"
DETERMINISTIC_SHARE = 0.5
STREAM_SHARE = 0.08
MAX_IN_FLIGHT = 200

# Read-only actions that answer in well under a second on any machine (no network, no disk walk).
READ_ONLY_ACTIONS = [
    ("kernel", "info"), ("kernel", "modules"), ("networking", "interfaces"), ("networking", "listening"),
    ("storage", "disk_usage"), ("storage", "io_stats"), ("application", "health"), ("application", "processes"),
    ("application", "config_report"), ("scalability", "queue_depth"), ("scalability", "recommend"),
    ("security", "encryption"), ("security", "firewall"),
]  # fmt: skip

SYSTEM_PROMPTS = [
    None,
    None,
    "You are an SRE assistant. Answer briefly.",
    "You help an on-call engineer. Be precise and name commands where useful.",
]

# Asked again and again (Zipf-like popularity), each with rewordings that mean the same thing.
POPULAR = [
    ["What does HTTP 503 Service Unavailable mean?", "Explain what an HTTP 503 error means."],
    ["Which process listens on port 8080 on Linux?", "Which Linux command shows the process on port 8080?"],
    ["What is the difference between liveness and readiness probes?", "Liveness vs readiness probes: the difference?"],
    ["Summarize what a Kubernetes PodDisruptionBudget does.", "What is a PodDisruptionBudget for in Kubernetes?"],
    ["How do I find the largest files under /var/log?", "Which command lists the biggest files in /var/log?"],
    ["What does the Linux load average measure?", "Explain the load average numbers shown by uptime."],
    ["Why would a Celery task run twice?", "What makes a Celery task execute more than once?"],
    ["How do I rotate a leaked API key safely?", "Steps to rotate an API key that was leaked."],
    ["What is a good alert threshold for disk usage?", "At what disk usage percentage should we alert?"],
    ["Explain exponential backoff with jitter.", "What is exponential backoff with jitter and why use it?"],
    ["What does OOMKilled mean for a container?", "Why was my container OOMKilled?"],
    ["How do I read a Postgres EXPLAIN ANALYZE plan?", "Tips for reading EXPLAIN ANALYZE output in Postgres."],
    ["What is the difference between TCP RST and FIN?", "TCP FIN versus RST: when is each sent?"],
    ["How can I tell if DNS resolution is slow?", "How do I measure slow DNS lookups?"],
    ["Write a one-line summary of the CAP theorem.", "Summarize the CAP theorem in one sentence."],
]  # fmt: skip

LONG_TAIL = [
    "Disk usage on {host} is at {pct}% and grew {grow}% since yesterday. What should I check first?",
    "The p95 latency of {service} went from {a} ms to {b} ms after deploy {build}. List likely causes.",
    "Write a short incident summary: {service} returned {errors} errors between {h1}:00 and {h2}:00 UTC.",
    "Draft a Prometheus alert rule for {service} when the error rate exceeds {pct}% for {mins} minutes.",
    "Explain this log line: 'worker-{n} lost connection to broker after {secs}s, reconnecting'.",
    "Compare running {service} with {n} replicas versus {m} replicas for a {rps} req/s load.",
    "Classify the severity of: {errors} failed logins for user ops{n} from {ips} addresses in {mins} minutes.",
    "Translate to French: 'Maintenance of {service} starts at {h1}:00 UTC and lasts {mins} minutes.'",
    "Design a rollback plan for release {build} of {service}, which touched the database schema, "
    "with the checks to run before and after; consider {n} dependent services.",
]
SERVICES = ["billing-api", "checkout", "search", "auth", "ledger", "notifications", "inventory", "gateway"]


@dataclass
class ChatRequest:
    body: dict[str, Any]
    stream: bool


def _fill(rng: random.Random, template: str) -> str:
    return template.format(
        host=f"node-{rng.randint(1, 40):02d}", pct=rng.randint(5, 97), grow=rng.randint(1, 30),
        service=rng.choice(SERVICES), a=rng.randint(80, 300), b=rng.randint(301, 2400),
        build=f"{rng.randint(1, 9)}.{rng.randint(0, 40)}.{rng.randint(0, 9)}", errors=rng.randint(3, 5000),
        h1=rng.randint(0, 22), h2=rng.randint(1, 23), mins=rng.choice([5, 10, 15, 30]), n=rng.randint(1, 9),
        m=rng.randint(10, 40), rps=rng.choice([200, 800, 2500]), secs=rng.randint(5, 120), ips=rng.randint(2, 80),
    )  # fmt: skip


def chat_request(rng: random.Random) -> ChatRequest:
    """One varied, realistic chat completion request."""
    deterministic = rng.random() < DETERMINISTIC_SHARE
    if deterministic and rng.random() < 0.6:
        weights = [1 / (i + 1) for i in range(len(POPULAR))]
        variants = rng.choices(POPULAR, weights=weights)[0]
        prompt = variants[0] if rng.random() < 0.8 else rng.choice(variants[1:])
        max_tokens = 256  # fixed: a popular question is asked the same way
        system = SYSTEM_PROMPTS[0]
    else:
        prompt = _fill(rng, rng.choice(LONG_TAIL))
        max_tokens = rng.choice([128, 256, 512, 1024])
        system = rng.choice(SYSTEM_PROMPTS)
    messages: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    stream = not deterministic and rng.random() < STREAM_SHARE * 2
    body: dict[str, Any] = {"model": "auto", "messages": messages, "max_tokens": max_tokens,
                            "temperature": 0 if deterministic else 0.7}  # fmt: skip
    if stream:
        body["stream"] = True
    return ChatRequest(body, stream)


def action_request(rng: random.Random) -> tuple[str, str, dict[str, Any], bool]:
    """(agent, action, payload, as the demo user?) for one agent action."""
    roll = rng.random()
    if roll < 0.6:
        agent, action = rng.choice(READ_ONLY_ACTIONS)
        return agent, action, {}, True
    if roll < 0.85:
        error_class = "retryable" if rng.random() < 0.8 else "permanent"
        sleep_ms = min(int(rng.lognormvariate(5.0, 0.7)), 3000)  # ~150 ms median
        return "chaos", "flaky", {"p_fail": 0.15, "error_class": error_class, "sleep_ms": sleep_ms}, False
    return "chaos", "gated", {"value": rng.randint(0, 5), "minimum": 1}, False


# --- identity -----------------------------------------------------------------------------------------


def demo_identity() -> tuple[Any, str]:
    """The demo user (created once: an operator who cannot log in) and a fresh API token for
    this run. Token secrets are never stored, so the previous run's token is revoked (audited)
    and a new one created."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from aios_site.models import ApiToken
    from aios_site.roles import sync_role_groups
    from aios_site.tokens import token_create, token_revoke

    User = get_user_model()
    user, created = User.objects.get_or_create(username=DEMO_USER)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
        if not Group.objects.filter(name="operator").exists():
            sync_role_groups()
        user.groups.add(Group.objects.get(name="operator"))
    for old in ApiToken.objects.filter(user=user, name=DEMO_TOKEN, revoked_at__isnull=True):
        token_revoke(token=old, via="demo")
    _, raw = token_create(user=user, name=DEMO_TOKEN, scopes=["gateway", "read"])
    return user, raw


# --- the workload ---------------------------------------------------------------------------------------


async def _chat(client: Any, url: str, token: str, request: ChatRequest, stats: Counter[str]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    try:
        if request.stream:
            async with client.stream("POST", f"{url}/v1/chat/completions", json=request.body, headers=headers) as r:
                async for _ in r.aiter_lines():
                    pass
                stats[f"http {r.status_code}"] += 1
                stats["streamed"] += 1
            return
        r = await client.post(f"{url}/v1/chat/completions", json=request.body, headers=headers)
        stats[f"http {r.status_code}"] += 1
        if r.status_code == 200:
            stats[f"cache {r.headers.get('x-aios-cache', '?')}"] += 1
    except Exception as exc:  # noqa: BLE001 - the server restarting: count it, keep going
        stats[f"error {type(exc).__name__}"] += 1


def _request_action(rng: random.Random, user: Any, stats: Counter[str]) -> None:
    from django.db import close_old_connections

    from agents.services import run_request
    from aios_core import context

    agent, action, payload, as_user = action_request(rng)
    # The spans (and so cost by user) say the demo caused them, whoever may request the action.
    with context.bound(username=user.username, user_id=user.pk):
        try:
            run_request(agent=agent, action=action, payload=payload, user=user if as_user else None, forensic=as_user)
            stats[f"action {agent}.{action}"] += 1
        except Exception as exc:  # noqa: BLE001 - an action switched off by policy, say
            stats[f"action refused {type(exc).__name__}"] += 1
        finally:
            close_old_connections()


async def run_demo(
    *, url: str, rate: float, duration: float, seed: int | None = None, action_share: float = 0.2
) -> Counter[str]:
    """Send `rate` operations a second (gateway requests and, `action_share` of them, agent
    actions) for `duration` seconds; returns what happened, counted."""
    import httpx
    from asgiref.sync import sync_to_async

    rng = random.Random(seed)
    stats: Counter[str] = Counter()
    tasks: set[asyncio.Task[None]] = set()
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        (await client.get(f"{url}/readyz")).raise_for_status()  # fail fast: is the server up and migrated?
        user, token = await sync_to_async(demo_identity)()
        started = time.monotonic()
        while time.monotonic() - started < duration:
            if len(tasks) >= MAX_IN_FLIGHT:  # the server is slower than the rate: wait, do not pile up
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            op_rng = random.Random(rng.random())
            if rng.random() < action_share:
                job = sync_to_async(_request_action)(op_rng, user, stats)
            else:
                job = _chat(client, url, token, chat_request(op_rng), stats)
            task = asyncio.ensure_future(job)
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            await asyncio.sleep(rng.expovariate(rate))
        if tasks:
            await asyncio.wait(tasks)
    return stats
