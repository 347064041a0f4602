"""A small Server-Sent Events parser shared by the provider clients.

Follows the WHATWG event-stream rules the providers rely on: `field: value` lines, a single
space after the colon stripped, `data` lines joined with newlines, comment lines (`:`) ignored,
and a blank line dispatching the event. https://html.spec.whatwg.org/multipage/server-sent-events.html
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class SSEEvent:
    event: str | None
    data: str


class SSEParser:
    """Feed it lines (without their line ending); it returns an event when one is complete."""

    __slots__ = ("_data", "_event")

    def __init__(self) -> None:
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, line: str) -> SSEEvent | None:
        if not line:
            return self.flush()
        if line[0] == ":":
            return None
        field, sep, value = line.partition(":")
        if sep and value[:1] == " ":
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        # `id` and `retry` only matter to browsers that reconnect; a completion is never resumed.
        return None

    def flush(self) -> SSEEvent | None:
        if not self._data and self._event is None:
            return None
        event = SSEEvent(event=self._event, data="\n".join(self._data))
        self._event, self._data = None, []
        return event


async def iter_sse(lines: AsyncIterator[str]) -> AsyncIterator[SSEEvent]:
    """Events from an async iterator of lines, such as `HttpProvider`'s `_lines`."""
    parser = SSEParser()
    async for line in lines:
        event = parser.feed(line)
        if event is not None:
            yield event
    # The spec drops an unterminated last event; llama.cpp and some proxies omit the final
    # blank line, so dispatching it loses nothing and keeps their last chunk (often the usage).
    event = parser.flush()
    if event is not None:
        yield event
