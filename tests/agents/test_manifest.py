from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from pydantic import BaseModel

from agents import manifest
from agents.manifest import ActionResult, Agent, registry, validate_registry

EXPECTED_AGENTS = {
    "security",
    "kernel",
    "networking",
    "storage",
    "application",
    "scalability",
    "orchestration",
    "chaos",
}


def test_the_manifest_declares_every_agent_with_at_least_three_actions() -> None:
    assert set(registry.agents) >= EXPECTED_AGENTS
    for name in EXPECTED_AGENTS:
        assert len(registry.agents[name].actions) >= 3, name
    security = registry.agents["security"].actions
    assert {
        "access_control",
        "encryption",
        "firewall",
        "firewall_enable",
        "threat_detection",
        "audit_review",
        "integrity_survey",
        "sovereign_suite",
    } <= set(security)
    assert security["firewall_enable"].requires_approval
    assert registry.agents["chaos"].admin_only


def test_every_action_has_a_pydantic_payload_and_a_policy() -> None:
    for spec in registry.all_actions():
        assert issubclass(spec.payload, BaseModel)
        assert spec.retry.max_attempts >= 1
        assert spec.description


def test_the_boot_sequence_is_a_valid_workflow() -> None:
    assert "boot_sequence" in registry.workflows
    validate_registry()


def test_a_broken_manifest_is_refused_with_every_problem_named(monkeypatch: pytest.MonkeyPatch) -> None:
    saved_agents, saved_wfs = dict(registry.agents), dict(registry.workflows)
    try:
        broken = Agent("brokenagent", "A broken agent for this test.")

        @broken.action(requires_approval=False, approvals_required=2)
        def twice(ctx: object, payload: object) -> ActionResult:
            """Needs two approvals without approval."""
            return ActionResult(success=True)

        manifest.workflow("brokenflow", "Refers to nothing.", [{"agent": "nope", "action": "nothing"}])
        with pytest.raises(ImproperlyConfigured) as exc:
            validate_registry()
        text = str(exc.value)
        assert "brokenagent.twice: approvals_required=2 without requires_approval" in text
        assert "workflow brokenflow step 0: no action nope.nothing" in text
    finally:
        registry.agents.clear()
        registry.agents.update(saved_agents)
        registry.workflows.clear()
        registry.workflows.update(saved_wfs)


def test_an_action_with_a_bad_name_fails_at_declaration() -> None:
    agent = Agent("tmpagent", "Temporary agent.")
    try:
        with pytest.raises(ImproperlyConfigured, match=r"tmpagent\.Bad"):

            @agent.action(name="Bad")
            def bad(ctx: object, payload: object) -> ActionResult:
                """Bad name."""
                return ActionResult(success=True)
    finally:
        registry.agents.pop("tmpagent")
