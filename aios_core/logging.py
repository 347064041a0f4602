"""One JSON object per log line, with the request id, user and trace id of the current work."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

from aios_core import context

# Belt and braces: secrets must never be logged, but if a message carries one anyway
# (an exception quoting a header, say), mask it before it leaves the process.
_SECRET_PATTERNS = [
    re.compile(r"(aios_[A-Za-z0-9]{6,}_)[A-Za-z0-9]+"),  # our API tokens
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(sk-(?:ant-)?)[A-Za-z0-9_-]{8,}"),  # provider keys
    re.compile(r"(?i)((?:password|secret|api[_-]?key|token)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"),
]

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def redact(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(r"\1[REDACTED]", text)
    return text


_CONTEXT_FIELDS = ("request_id", "username", "api_token", "trace_id")


def install_record_factory() -> None:
    """Stamp the work context onto every log record when it is created, so the fields
    survive handlers that format later or elsewhere (queues, test capture)."""
    base = logging.getLogRecordFactory()
    if getattr(base, "_aios", False):
        return

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = base(*args, **kwargs)
        ctx = context.current()
        for key in _CONTEXT_FIELDS:
            value = getattr(ctx, key)
            if value:
                setattr(record, key, value)
        return record

    factory._aios = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        ctx = context.current()
        for key in _CONTEXT_FIELDS:
            value = getattr(record, key, None) or getattr(ctx, key)
            if value:
                entry[key] = value
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key not in entry and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)
