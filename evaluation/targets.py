"""What an eval run evaluates: its target, named by a string.

- `echo`: the output is the input (runs that only apply code evaluators);
- `auto`: the router picks the model; a model id: that model (both through routing.completion);
- `agent:<agent>.<action>`: the agent's action, run now in forensic mode through the agents service layer
  (nothing changes; planned changes are in the output's metadata). The item's input is the action's payload.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError

from evaluation import evaluators as ev

ECHO, ROUTER, AGENT_PREFIX = "echo", "auto", "agent:"


class TargetInputError(ValueError):
    """The item's input cannot be given to the target (recorded as the item's error)."""


@dataclass(frozen=True)
class TargetAnswer:
    output: Any
    cost_usd: Decimal | None
    model: str = ""  # the model that answered (model and router targets)
    tier: str = ""  # its catalog tier (simple / medium / complex)


def agent_action(target: str) -> tuple[str, str] | None:
    """(agent, action) for an `agent:` target, else None. Raises ValueError for a malformed one."""
    if not target.startswith(AGENT_PREFIX):
        return None
    agent, dot, action = target.removeprefix(AGENT_PREFIX).partition(".")
    if not (agent and dot and action):
        raise ValueError("an agent target reads agent:<agent>.<action>")
    return agent, action


def target_validate(target: str, user: Any) -> str:
    """The target, stripped, if runs can use it; else a ValidationError on `target`."""
    target = target.strip()
    if not target:
        raise ValidationError({"target": "Choose a target: a model, 'auto' (the router), 'echo' or agent:<a>.<b>."})
    try:
        action = agent_action(target)
    except ValueError as exc:
        raise ValidationError({"target": f"{exc}, e.g. agent:kernel.sysctl_read"}) from None
    if action is not None:
        from agents.services import action_spec_for_user

        try:
            action_spec_for_user(agent=action[0], action=action[1], user=user)
        except ValidationError as exc:
            raise ValidationError({"target": " ".join(exc.messages)}) from None
    elif target not in (ECHO, ROUTER):
        from routing import catalog

        if catalog.find(target) is None:
            raise ValidationError({"target": f"Unknown model {target!r}."})
    return target


async def target_call(target: str, input: Any, user: Any) -> TargetAnswer:
    if target == ECHO:
        return TargetAnswer(input, Decimal(0))
    action = agent_action(target)
    if action is not None:
        return await sync_to_async(_run_action, thread_sensitive=True)(action[0], action[1], input, user)
    return await _complete(target, input, getattr(user, "username", "") or "")


async def _complete(target: str, input: Any, username: str) -> TargetAnswer:
    from routing.completion import Caller, CompletionRequest, complete

    if isinstance(input, dict) and isinstance(input.get("messages"), list):
        messages = input["messages"]
    else:
        messages = [{"role": "user", "content": ev.as_text(input)}]
    result = await complete(CompletionRequest(messages=messages, model=target), Caller(username=username))
    endpoint = result.endpoint
    return TargetAnswer(result.response.content, result.cost_usd, endpoint.span_model, endpoint.tier)


def _payload(input: Any) -> dict[str, Any]:
    if input in (None, ""):
        return {}
    if isinstance(input, str):
        try:
            input = json.loads(input)
        except ValueError:
            input = None
    if not isinstance(input, dict):
        raise TargetInputError("the item's input is not a JSON object (the action's payload)")
    return input


def _run_action(agent: str, action: str, input: Any, user: Any) -> TargetAnswer:
    """Runs in the worker's own thread (thread-sensitive): the action's timeout is a SIGALRM there, and its
    database reads share the worker's connection. Actions of a batch therefore run one at a time."""
    from agents.services import run_forensic_preview

    try:
        result = run_forensic_preview(agent=agent, action=action, payload=_payload(input), user=user)
    except ValidationError as exc:  # the payload does not fit the action's schema
        raise TargetInputError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
    return TargetAnswer(result.model_dump(mode="json"), Decimal(str(result.cost_usd or 0)))
