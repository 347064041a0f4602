"""security: access control, encryption, firewall, threat detection, audit review, integrity, tools."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import statistics
from datetime import timedelta
from typing import Literal

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Avg, Count, Q, Sum
from django.utils import timezone
from pydantic import BaseModel, ConfigDict, Field

from agents.handlers._util import fail, has_key, ok, read_text
from agents.manifest import ActionResult, Agent
from agents.runtime.context import ExecutionContext

agent = Agent("security", "Access control, encryption, firewall, threat detection, audit and integrity.")


class StaleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stale_after_days: int = Field(default=90, ge=1, le=3650)


@agent.action(payload=StaleIn, forensic_safe=True, gate=has_key("users"))
def access_control(ctx: ExecutionContext, payload: StaleIn) -> ActionResult:
    """Roles and permissions of this installation; stale accounts; unused or expired API tokens."""
    User = get_user_model()
    now = timezone.now()
    stale_before = now - timedelta(days=payload.stale_after_days)
    users = User.objects.filter(is_active=True)
    roles = {g["groups__name"] or "(none)": g["n"] for g in users.values("groups__name").annotate(n=Count("id"))}
    stale = list(
        users.filter(
            Q(last_login__lt=stale_before) | Q(last_login__isnull=True, date_joined__lt=stale_before)
        ).values_list("username", flat=True)[:100]
    )
    ApiToken = apps.get_model("aios_site", "ApiToken")  # read through the app registry: no upward import
    live_tokens = ApiToken.objects.filter(revoked_at__isnull=True)
    never_used = list(live_tokens.filter(last_used_at__isnull=True).values_list("name", flat=True)[:100])
    expired = list(live_tokens.filter(expires_at__lt=now).values_list("name", flat=True)[:100])
    superusers = list(users.filter(is_superuser=True).values_list("username", flat=True))
    findings = len(stale) + len(never_used) + len(expired)
    return ok(
        f"{users.count()} active users, {findings} finding(s)",
        {
            "users": users.count(),
            "by_role": roles,
            "superusers": superusers,
            "stale_accounts": stale,
            "tokens_never_used": never_used,
            "tokens_expired_not_revoked": expired,
        },
    )


@agent.action(forensic_safe=True, gate=has_key("tls"))
def encryption(ctx: ExecutionContext, payload: BaseModel) -> ActionResult:
    """TLS and key settings of this deployment; disk encryption where detectable."""
    db = settings.DATABASES["default"]
    tls = {
        "https_redirect": settings.SECURE_SSL_REDIRECT,
        "hsts_seconds": settings.SECURE_HSTS_SECONDS,
        "session_cookie_secure": settings.SESSION_COOKIE_SECURE,
        "csrf_cookie_secure": settings.CSRF_COOKIE_SECURE,
        "database_sslmode": db.get("OPTIONS", {}).get("sslmode", "default"),
        "secret_key_length": len(settings.SECRET_KEY),
    }
    _, openssl = ctx.executor.run_readonly(["openssl", "version"])
    crypt_devices = []
    for dm in sorted(os.listdir("/sys/block")) if os.path.isdir("/sys/block") else []:
        uuid = read_text(f"/sys/block/{dm}/dm/uuid").strip()
        if uuid.startswith("CRYPT-"):
            crypt_devices.append({"device": dm, "type": uuid.split("-")[1]})
    weak = [k for k, v in tls.items() if v in (False, 0)] + (
        ["short_secret_key"] if tls["secret_key_length"] < 40 else []
    )
    return ok(
        f"{len(weak)} weak setting(s); {len(crypt_devices)} encrypted block device(s)",
        {
            "tls": tls,
            "weak": weak,
            "openssl": openssl.strip(),
            "disk_encryption": crypt_devices or "none detected",
        },
        confidence=0.8 if not crypt_devices else 1.0,
    )


def _firewall_status(ctx: ExecutionContext) -> dict[str, object]:
    tools = {}
    for argv in (["nft", "list", "ruleset"], ["iptables", "-S"], ["ufw", "status"]):
        if shutil.which(argv[0]):
            code, out = ctx.executor.run_readonly(argv)
            tools[argv[0]] = {"exit": code, "output": out[:4000]}
    active = any(t["exit"] == 0 and len(str(t["output"]).strip().splitlines()) > 3 for t in tools.values())
    return {"tools": tools or "none of nft, iptables, ufw is installed", "host_active": active}


@agent.action(forensic_safe=True, gate=has_key("host_active"))
def firewall(ctx: ExecutionContext, payload: BaseModel) -> ActionResult:
    """Firewall status through nft, iptables or ufw where present (read-only)."""
    status = _firewall_status(ctx)
    sandbox = getattr(ctx.executor, "firewall_state", lambda: None)()
    status["sandbox"] = sandbox
    return ok("host firewall " + ("active" if status["host_active"] else "not active or not visible"), status)


class FirewallIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    allow_tcp_ports: list[int] = Field(default=[22, 443, 8000], max_length=50)
    default_policy: Literal["drop", "reject"] = "drop"

    def rules(self) -> list[str]:
        ports = ", ".join(str(p) for p in sorted(set(self.allow_tcp_ports)) if 0 < p < 65536)
        rules = [
            "table inet aios_filter",
            "flush table inet aios_filter",
            "table inet aios_filter { chain input { type filter hook input priority 0; "
            f"policy {self.default_policy};",
            "  ct state established,related accept",
            "  iif lo accept",
            "  ip protocol icmp accept",
        ]
        if ports:
            rules.append(f"  tcp dport {{ {ports} }} accept")
        rules.append("} }")
        return rules


def _rules_applied(result: ActionResult, payload: BaseModel) -> str | None:
    return None if result.payload.get("change", {}).get("detail", {}).get("rules") else "no ruleset was produced"


@agent.action(payload=FirewallIn, requires_approval=True, risk="high", critical=True, gate=_rules_applied)
def firewall_enable(ctx: ExecutionContext, payload: FirewallIn) -> ActionResult:
    """Turn the firewall on with a default-deny input policy and the allowed TCP ports."""
    change = ctx.executor.firewall_apply(payload.rules(), enable=True)
    verb = "applied" if change["applied"] else "would apply"
    return ok(f"{verb} {len(change['detail']['rules'])} firewall rules ({ctx.executor.kind})", {"change": change})


class WindowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    window_minutes: int = Field(default=60, ge=5, le=1440)
    baseline_hours: int = Field(default=24, ge=1, le=24 * 30)
    threshold: float = Field(default=3.0, gt=1, le=100)


@agent.action(payload=WindowIn, forensic_safe=True, gate=has_key("anomalies"))
def threat_detection(ctx: ExecutionContext, payload: WindowIn) -> ActionResult:
    """Anomalies in this system's own spans: error, latency and cost spikes against a learned baseline."""
    Span = apps.get_model("observability", "Span")
    now = timezone.now()
    window = timedelta(minutes=payload.window_minutes)
    buckets = []
    start = now - timedelta(hours=payload.baseline_hours)
    cursor = start
    while cursor < now:  # baseline buckets of the window's length, then the current window (last)
        end = min(cursor + window, now)
        agg = Span.objects.filter(started_at__gte=cursor, started_at__lt=end).aggregate(
            n=Count("id"), errors=Count("id", filter=Q(status="error")), latency=Avg("latency_ms"), cost=Sum("cost_usd")
        )
        buckets.append(
            {
                "n": agg["n"],
                "error_rate": (agg["errors"] / agg["n"]) if agg["n"] else 0.0,
                "latency_ms": agg["latency"] or 0.0,
                "cost": float(agg["cost"] or 0),
            }
        )
        cursor = end
    current, history = buckets[-1], [b for b in buckets[:-1] if b["n"]]
    anomalies = []
    for metric in ("error_rate", "latency_ms", "cost"):
        values = [b[metric] for b in history]
        if len(values) < 3:
            continue
        mean, sd = statistics.fmean(values), statistics.pstdev(values) or 1e-9
        z = (current[metric] - mean) / sd
        if z > payload.threshold and current[metric] > mean * 1.2:
            anomalies.append({"metric": metric, "current": current[metric], "baseline_mean": mean, "z": round(z, 2)})
    confidence = min(1.0, len(history) / 12)  # more history, more trust in the baseline
    return ok(
        f"{len(anomalies)} anomaly(ies) in the last {payload.window_minutes} min",
        {
            "anomalies": anomalies,
            "current": current,
            "baseline_buckets": len(history),
        },
        confidence=confidence,
    )


class AuditIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hours: int = Field(default=24, ge=1, le=24 * 90)
    failed_login_threshold: int = Field(default=5, ge=1)


RISKY = ("auth.roles_", "token.", "agents.policy_changed", "agents.schedule_", "approval.")


@agent.action(payload=AuditIn, forensic_safe=True, gate=has_key("chain"))
def audit_review(ctx: ExecutionContext, payload: AuditIn) -> ActionResult:
    """Failed logins and risky events from the audit log, with the hash chain verified."""
    from observability.audit import audit_verify

    AuditEvent = apps.get_model("observability", "AuditEvent")
    since = timezone.now() - timedelta(hours=payload.hours)
    recent = AuditEvent.objects.filter(created_at__gte=since)
    failed = list(recent.filter(action="auth.login_failed").values("object_id").annotate(n=Count("id")).order_by("-n"))
    risky_q = Q()
    for prefix in RISKY:
        risky_q |= Q(action__startswith=prefix)
    risky = list(recent.filter(risky_q).order_by("-seq").values("seq", "action", "actor", "object_id")[:50])
    report = audit_verify()
    brute = [f for f in failed if f["n"] >= payload.failed_login_threshold]
    result = {
        "failed_logins": failed[:50],
        "suspected_brute_force": brute,
        "risky_events": risky,
        "chain": {"ok": report.ok, "checked": report.checked, "broken_seq": report.broken_seq, "reason": report.reason},
    }
    if not report.ok:
        return fail(f"audit chain broken at #{report.broken_seq}: {report.reason}", "audit_chain_broken", result)
    return ok(f"chain intact ({report.checked} events); {len(brute)} account(s) with repeated failed logins", result)


class IntegrityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rebaseline: bool = False


def _sha256(path: str) -> tuple[str, int] | None:
    try:
        h = hashlib.sha256()
        size = 0
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
                size += len(chunk)
        return h.hexdigest(), size
    except OSError:
        return None


@agent.action(payload=IntegrityIn, gate=has_key("checked"))
def integrity_survey(ctx: ExecutionContext, payload: IntegrityIn) -> ActionResult:
    """SHA-256 of the configured paths against the baseline stored in the database (recorded on first run)."""
    from agents.models import IntegrityBaseline

    paths = list(settings.AIOS_INTEGRITY_PATHS)
    current = {p: _sha256(p) for p in paths}
    baseline = {b.path: b for b in IntegrityBaseline.objects.filter(path__in=paths)}
    changed, missing, new = [], [], []
    for path, digest in current.items():
        if digest is None:
            missing.append(path)
        elif path not in baseline:
            new.append(path)
        elif baseline[path].sha256 != digest[0]:
            changed.append({"path": path, "was": baseline[path].sha256[:16], "now": digest[0][:16]})
    to_record = [p for p in (paths if payload.rebaseline else new) if current[p] is not None]
    if to_record:

        def store() -> None:
            now = timezone.now()
            for p in to_record:
                IntegrityBaseline.objects.update_or_create(
                    path=p, defaults={"sha256": current[p][0], "size": current[p][1], "recorded_at": now}
                )

        ctx.executor.apply("baseline_record", "integrity_baseline", {"paths": to_record}, store)
    body = {"checked": len(paths), "changed": changed, "missing": missing, "baselined": to_record}
    return ok(f"{len(paths)} path(s): {len(changed)} changed, {len(missing)} missing, {len(to_record)} baselined", body)


def _version(ctx: ExecutionContext, tool: str) -> str:
    argv = ["openssl", "version"] if tool == "openssl" else [tool, "--version"]
    code, out = ctx.executor.run_readonly(argv, allow_tools=settings.AIOS_SECURITY_TOOLS)
    match = re.search(r"\d+(\.\d+)+[a-z]?", out)
    return match.group(0) if code == 0 and match else ""


@agent.action(forensic_safe=True, gate=has_key("tools"))
def sovereign_suite(ctx: ExecutionContext, payload: BaseModel) -> ActionResult:
    """Which configured security tools are installed, their versions and health."""
    tools = []
    for tool in settings.AIOS_SECURITY_TOOLS:
        path = shutil.which(tool)
        version = _version(ctx, tool) if path else ""
        tools.append(
            {"tool": tool, "installed": bool(path), "path": path, "version": version, "healthy": bool(path and version)}
        )
    installed = sum(t["installed"] for t in tools)
    return ok(f"{installed} of {len(tools)} configured security tools installed", {"tools": tools})
