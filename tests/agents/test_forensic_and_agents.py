"""Forensic enforcement for every action that changes something, and every agent's actions on this machine."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from agents.manifest import registry
from agents.models import ActionRun, IntegrityBaseline, SideEffect
from agents.runtime.context import ExecutionContext
from agents.runtime.errors import ForensicRefusal
from agents.runtime.executor import ForensicExecutor, SandboxExecutor
from agents.runtime.guard import forensic_guard
from agents.services import run_forensic_preview, run_request
from tests.agents.conftest import drain, refreshed

pytestmark = pytest.mark.django_db

# Payloads for actions without defaults for every field, or that must be bounded in tests.
PAYLOADS: dict[str, dict[str, Any]] = {
    "networking.tcp_check": {"port": 1, "timeout_s": 0.2},  # the port is closed: fails retryably
    "kernel.sysctl_set": {"key": "vm.swappiness", "value": "10"},
    "storage.large_files": {"top": 5, "max_files": 2000},
    "storage.snapshot_listing": {"path": "/etc/ssl", "target": "/var/lib/aios/etc-ssl.json"},
    "storage.cleanup": {"path": "/tmp", "older_than_days": 1, "limit": 5},
    "scalability.workers": {"timeout_s": 0.2},
    "chaos.flaky": {"p_fail": 0},
    "chaos.effect": {"p_fail": 0},
    "chaos.crash": {"times": 5},
    "chaos.gated": {"value": 1},
    "orchestration.start_workflow": {"name": "security_review"},
}
NOT_HERE = {"networking.tcp_check"}  # nothing listens on port 1: a retryable failure is the right answer
CHANGING = sorted(s.key for s in registry.all_actions() if not s.forensic_safe)


def _snapshot(root: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in root.rglob("*")} if root.exists() else {}


@pytest.mark.parametrize("key", CHANGING)
def test_forensic_mode_changes_nothing_and_previews_the_change(
    key: str, admin_user: Any, no_broker: Any, settings: Any
) -> None:
    agent, action = key.split(".")
    sandbox = Path(settings.AIOS_SANDBOX_DIR)
    before_sandbox, before_effects = _snapshot(sandbox), SideEffect.objects.count()
    before_baseline, before_runs = IntegrityBaseline.objects.count(), ActionRun.objects.count()
    run, _ = run_request(agent=agent, action=action, payload=PAYLOADS.get(key, {}), user=admin_user, forensic=True)
    assert run.status == "queued"  # forensic runs need no approval: they change nothing
    drain(no_broker)
    run = refreshed(run)
    assert _snapshot(sandbox) == before_sandbox
    assert SideEffect.objects.count() == before_effects
    assert IntegrityBaseline.objects.count() == before_baseline
    assert ActionRun.objects.count() == before_runs + 1  # orchestration did not start a workflow
    if key == "chaos.crash":  # it tried to kill its worker: the guard refused
        assert run.status == "failed" and "forensic mode: refused os.kill" in run.error
        return
    assert run.status == "succeeded", run.error
    if key not in ("storage.cleanup",) or run.preview:
        assert run.preview and all(change["applied"] is False for change in run.preview)


def test_aios_forensic_mode_forces_every_run_read_only(admin_user: Any, no_broker: Any, settings: Any) -> None:
    settings.AIOS_FORENSIC_MODE = True
    run, _ = run_request(agent="kernel", action="sysctl_set", payload=PAYLOADS["kernel.sysctl_set"], user=admin_user)
    assert run.forensic and run.status == "queued"
    drain(no_broker)
    run = refreshed(run)
    assert run.status == "succeeded" and run.preview[0]["applied"] is False
    assert not (Path(settings.AIOS_SANDBOX_DIR) / "sysctl").exists()


def test_the_guard_refuses_direct_writes_subprocesses_and_signals(tmp_path: Path) -> None:
    target = tmp_path / "x.txt"
    with forensic_guard(True):
        with pytest.raises(ForensicRefusal):
            target.write_text("no")
        with pytest.raises(ForensicRefusal):
            os.remove(__file__)
        with pytest.raises(ForensicRefusal):
            import subprocess

            subprocess.run(["true"], check=False)
        with pytest.raises(ForensicRefusal):
            os.kill(os.getpid(), 0)
        assert Path(__file__).read_text()  # reading is fine
        code, out = ForensicExecutor().run_readonly(["uname", "-a"] if False else ["uname"])  # allow-listed
        assert code == 0 and out
    assert not target.exists()
    target.write_text("fine outside forensic runs")


def test_the_forensic_preview_service_runs_now_and_returns_the_plan(admin_user: Any, settings: Any) -> None:
    result = run_forensic_preview(
        agent="security", action="firewall_enable", payload={"allow_tcp_ports": [22]}, user=admin_user
    )
    assert result.success
    planned = result.metadata["planned_changes"]
    assert planned[0]["op"] == "firewall_apply" and planned[0]["applied"] is False
    assert any("22" in rule for rule in planned[0]["detail"]["rules"])
    assert not (Path(settings.AIOS_SANDBOX_DIR) / "firewall").exists()


def test_the_sandbox_executor_never_touches_real_paths(tmp_path: Path) -> None:
    executor = SandboxExecutor(tmp_path)
    change = executor.write_file("/etc/aios-test-should-not-exist", "x")
    assert not Path("/etc/aios-test-should-not-exist").exists()
    assert Path(change["detail"]["sandbox_path"]).read_text() == "x"
    assert str(tmp_path) in executor.sandbox_path("/../../etc/passwd").as_posix()


@pytest.mark.parametrize("key", sorted(s.key for s in registry.all_actions() if s.key != "chaos.crash"))
def test_each_agent_action_works_on_this_machine(key: str, admin_user: Any, no_broker: Any, settings: Any) -> None:
    """Every action, for real (changes go to the sandbox), through the runtime."""
    agent, action = key.split(".")
    run, _ = run_request(agent=agent, action=action, payload=PAYLOADS.get(key, {}), user=admin_user)
    if run.status == "awaiting_approval":
        from agents.services import run_release_after_approval

        run_release_after_approval(run=run)
    drain(no_broker)
    run = refreshed(run)
    if key in NOT_HERE:
        assert run.status == "failed" and run.error_class == "retryable" and run.attempt == run.max_attempts
        return
    assert run.status == "succeeded", f"{key}: {run.error_type}: {run.error}"
    assert run.result["message"]


def test_firewall_enable_waits_for_approval_and_then_applies_to_the_sandbox(
    admin_user: Any, no_broker: Any, settings: Any
) -> None:
    from agents.services import run_release_after_approval

    run, _ = run_request(agent="security", action="firewall_enable", payload={}, user=admin_user)
    assert run.status == "awaiting_approval" and no_broker == []
    assert run.dispatched_at is None
    run_release_after_approval(run=run)
    drain(no_broker)
    run = refreshed(run)
    assert run.status == "succeeded"
    state = (Path(settings.AIOS_SANDBOX_DIR) / "firewall" / "ruleset.json").read_text()
    assert '"simulated": true' in state


def test_integrity_survey_baselines_then_detects_a_change(
    admin_user: Any, no_broker: Any, settings: Any, tmp_path: Path
) -> None:
    watched = tmp_path / "watched.conf"
    watched.write_text("a=1\n")
    settings.AIOS_INTEGRITY_PATHS = [str(watched)]
    first, _ = run_request(agent="security", action="integrity_survey", payload={}, user=admin_user)
    drain(no_broker)
    assert refreshed(first).result["payload"]["baselined"] == [str(watched)]
    watched.write_text("a=2\n")
    second, _ = run_request(agent="security", action="integrity_survey", payload={}, user=admin_user)
    drain(no_broker)
    changed = refreshed(second).result["payload"]["changed"]
    assert [c["path"] for c in changed] == [str(watched)]


def test_a_handler_context_keys_side_effects_by_run() -> None:
    ctx = ExecutionContext(agent="a", action="b", executor=ForensicExecutor(), run_id=None)
    assert ctx.idempotency_key.startswith("preview:")
