"""A realistic demo workload through the public tracing API (asyncio; latencies are real waits).

Agents run actions; each action looks up the cache and, on a miss, sends a prompt through the
real router and provider path (routing.completion: the simulator when no key is configured),
maybe runs a tool, and sometimes fails. `gateway=False` draws the LLM calls from distributions
instead (no router), for load tests of the tracing path alone.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

from observability import get_observability

AGENTS = ["security", "kernel", "networking", "storage", "application", "scalability", "orchestration"]
ACTIONS = {
    "security": ["access_control", "audit_review", "threat_detection", "integrity_survey"],
    "kernel": ["process_report", "load_report", "module_inventory"],
    "networking": ["interface_report", "dns_check", "port_scan_self"],
    "storage": ["disk_usage", "inode_report", "large_files"],
    "application": ["service_health", "dependency_audit", "log_summary"],
    "scalability": ["queue_depth", "scale_recommendation"],
    "orchestration": ["boot_sequence", "start_workflow"],
}


@dataclass(frozen=True)
class ModelProfile:
    name: str
    provider: str
    median_ms: float
    weight: float
    reasoning: bool = False


MODELS = [
    ModelProfile("gemini-1.5-flash", "gemini", 350, 0.45),
    ModelProfile("gpt-4o-mini", "openai", 650, 0.35),
    ModelProfile("claude-3-5-sonnet-20241022", "anthropic", 1600, 0.15),
    ModelProfile("gpt-4o", "openai", 1200, 0.05),
]


def _lognormal_ms(rng: random.Random, median: float, sigma: float = 0.5) -> float:
    return median * rng.lognormvariate(0, sigma)


PROMPTS = [
    "Summarize the last hour of {agent} alerts in one sentence.",
    "List the {action} findings that need attention today.",
    "Explain why the {action} check failed and what to do next, step by step.",
    "Design a remediation plan for the {agent} issues found by {action}, with rollback steps.",
    "Translate the {action} report title to French.",
    "Analyze these {agent} metrics and compare them with last week's baseline; explain the trade-offs.",
]


async def _via_router(rng: random.Random, agent: str, action: str) -> None:
    """The real path: the router picks a model, the provider (the simulator without keys)
    answers; route and llm spans come from routing.completion, as for gateway calls."""
    from routing.completion import CompletionRequest, complete

    prompt = rng.choice(PROMPTS).format(agent=agent, action=action)
    try:
        await complete(CompletionRequest(messages=[{"role": "user", "content": prompt}], temperature=0))
    except Exception:  # noqa: BLE001 - provider failures are recorded on the spans
        pass


async def _action(rng: random.Random, speed: float, gateway: bool = True) -> None:
    obs = get_observability()
    agent = rng.choice(AGENTS)
    action = rng.choice(ACTIONS[agent])
    try:
        async with obs.trace_span(f"{agent}.{action}", agent_name=agent, kind="action") as root:
            root.set_attribute("aios.action", action)
            model = rng.choices(MODELS, weights=[m.weight for m in MODELS])[0]
            async with obs.trace_span("route", kind="route") as route:
                route.set_attributes({"aios.route.model": model.name, "aios.route.tier": model.name})
                await asyncio.sleep(_lognormal_ms(rng, 0.4, 0.3) / 1000 * speed)
            hit = rng.random() < 0.22
            async with obs.trace_span("cache.lookup", kind="cache") as cache:
                cache.set_attribute("aios.cache.result", "hit" if hit else "miss")
                await asyncio.sleep(_lognormal_ms(rng, 2 if not hit else 1, 0.4) / 1000 * speed)
            if not hit and gateway:
                await _via_router(rng, agent, action)
            elif not hit:
                llm_span = obs.trace_span(f"chat {model.name}", kind="llm", model=model.name, provider=model.provider)
                async with llm_span as llm:
                    llm.set_attribute("gen_ai.operation.name", "chat")
                    await asyncio.sleep(_lognormal_ms(rng, model.median_ms, 0.6) / 1000 * speed)
                    if rng.random() < 0.02:
                        raise TimeoutError(f"{model.provider} did not answer in time")
                    prompt = int(rng.lognormvariate(6.5, 0.8))
                    output = int(rng.lognormvariate(5.3, 0.7))
                    llm.set_tokens(input_tokens=prompt, output_tokens=output, model=model.name, provider=model.provider,
                                   cached_input_tokens=int(prompt * rng.choice([0, 0, 0.5])))  # fmt: skip
            if rng.random() < 0.5:
                async with obs.trace_span(f"tool.{action}", kind="tool"):
                    await asyncio.sleep(_lognormal_ms(rng, 40, 0.8) / 1000 * speed)
                    if rng.random() < 0.01:
                        raise PermissionError("tool refused: read-only executor")
    except (TimeoutError, PermissionError):
        pass  # recorded on the spans; a demo keeps going


async def run_demo(
    *, rate: float, duration: float, seed: int | None = None, speed: float = 1.0, gateway: bool = True
) -> int:
    """Start `rate` actions a second for `duration` seconds; returns how many ran."""
    rng = random.Random(seed)
    started, n, tasks = time.monotonic(), 0, set()
    while time.monotonic() - started < duration:
        task = asyncio.create_task(_action(random.Random(rng.random()), speed, gateway))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        n += 1
        await asyncio.sleep(rng.expovariate(rate))
    if tasks:
        await asyncio.wait(tasks)
    get_observability().flush(timeout=30)
    return n
