"""The tamper-evident audit log: one service to append, one to verify.

Every app writes through `audit_append`, inside its own transaction, so an audited change
and its event commit or roll back together. Appends are serialized by a row lock on the
chain head: keep audited transactions short, and append last.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from aios_core import context
from observability.models import AuditChainHead, AuditEvent

GENESIS_HASH = "0" * 64


def _canonical(event: AuditEvent) -> str:
    body = {
        "seq": event.seq,
        "created_at": event.created_at.isoformat(),
        "actor_id": event.actor_id,
        "actor": event.actor,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "data": event.data,
        "ip": event.ip,
        "request_id": event.request_id,
        "prev_hash": event.prev_hash,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def compute_hash(event: AuditEvent) -> str:
    return hashlib.sha256(_canonical(event).encode()).hexdigest()


def audit_append(
    *,
    action: str,
    object_type: str = "",
    object_id: Any = "",
    data: dict[str, Any] | None = None,
    actor: Any = None,
) -> AuditEvent:
    """Append one event. `actor` is a user (default: the current request's user, if any)."""
    ctx = context.current()
    actor_id = getattr(actor, "pk", None) if actor is not None else ctx.user_id
    actor_name = getattr(actor, "get_username", lambda: "")() if actor is not None else ctx.username
    # Round-trip through JSON so the hash is computed over exactly what jsonb gives back.
    payload = json.loads(json.dumps(data or {}, default=str))
    with transaction.atomic():
        head = AuditChainHead.objects.select_for_update().get_or_create(pk=1)[0]
        event = AuditEvent(
            seq=head.seq + 1,
            created_at=timezone.now(),
            actor_id=actor_id,
            actor=actor_name or "",
            action=action,
            object_type=object_type,
            object_id=str(object_id) if object_id is not None else "",
            data=payload,
            ip=ctx.ip,
            request_id=ctx.request_id or "",
            prev_hash=head.hash,
        )
        event.hash = compute_hash(event)
        event.save(force_insert=True)
        AuditChainHead.objects.filter(pk=1).update(seq=event.seq, hash=event.hash)
    return event


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    broken_seq: int | None = None
    broken_id: int | None = None
    reason: str = ""


def audit_verify(batch_size: int = 5000) -> ChainReport:
    """Walk the chain from the first event; report the first row that does not fit."""
    expected_seq, prev_hash, checked = 1, GENESIS_HASH, 0
    last: AuditEvent | None = None
    for event in AuditEvent.objects.order_by("seq").iterator(chunk_size=batch_size):
        if event.seq != expected_seq:
            return ChainReport(False, checked, expected_seq, None, f"event #{expected_seq} is missing")
        if event.prev_hash != prev_hash:
            return ChainReport(False, checked, event.seq, event.pk, "does not link to the previous event")
        if compute_hash(event) != event.hash:
            return ChainReport(False, checked, event.seq, event.pk, "content does not match its hash")
        expected_seq, prev_hash, checked, last = event.seq + 1, event.hash, checked + 1, event
    head = AuditChainHead.objects.filter(pk=1).first()
    head_seq = head.seq if head else 0
    if head_seq != (last.seq if last else 0) or (head and last and head.hash != last.hash):
        end = last.seq if last else 0
        reason = f"chain ends at #{end} but the head says #{head_seq}: newest events deleted"
        return ChainReport(False, checked, end + 1, None, reason)
    return ChainReport(True, checked)
