"""A scripted HTTP server on 127.0.0.1 that stands in for LLM providers in tests.

Each test queues the responses the "provider" will give (status, headers, a JSON or raw body,
or a list of SSE events; optionally a delay) and reads back what the client sent, so the
clients are tested against their real wire format rather than against mocks of our own code.
Recorded provider responses live in `fixtures/providers/*.json`.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures" / "providers"


@dataclass(kw_only=True)
class ScriptedResponse:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # dict or list: sent as JSON; str or bytes: sent as is
    sse: list[dict[str, Any]] | None = None  # [{"event": optional name, "data": dict or str}, ...]
    line_ending: str = "\n"  # Gemini separates SSE lines with CRLF
    delay_s: float = 0.0  # before the status line, or, with stall_after, mid-stream
    stall_after: int | None = None  # SSE only: pause delay_s after this many events

    def sse_frames(self) -> list[bytes]:
        frames = []
        for item in self.sse or ():
            data = item["data"] if isinstance(item["data"], str) else json.dumps(item["data"])
            lines = ([f"event: {item['event']}"] if item.get("event") else []) + [f"data: {data}", "", ""]
            frames.append(self.line_ending.join(lines).encode())
        return frames

    def raw_body(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode() if self.body is not None else b""


@dataclass(kw_only=True)
class RecordedRequest:
    method: str
    path: str  # with the query string
    headers: dict[str, str]  # lower-cased names
    body: bytes
    client_port: int  # the same port on two requests means the client reused its connection

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def load_fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def fixture_response(name: str, **overrides: Any) -> ScriptedResponse:
    """The recorded response in fixture `name` ({"response": {status, headers, body | sse}})."""
    recorded = dict(load_fixture(name)["response"], **overrides)
    return ScriptedResponse(**recorded)


class ProviderServer:
    def __init__(self) -> None:
        self._responses: deque[ScriptedResponse] = deque()
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._httpd = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="provider-server", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def last(self) -> RecordedRequest:
        return self.requests[-1]

    def start(self) -> ProviderServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def reset(self) -> None:
        with self._lock:
            self._responses.clear()
            self.requests.clear()

    def enqueue(self, *responses: ScriptedResponse) -> None:
        with self._lock:
            self._responses.extend(responses)

    def _next(self, request: RecordedRequest) -> ScriptedResponse:
        with self._lock:
            self.requests.append(request)
            if self._responses:
                return self._responses.popleft()
        return ScriptedResponse(status=599, body={"error": "the test scripted no response for this request"})


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True  # a handler still sleeping through a timeout test never blocks exit

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or close their pool drop connections mid-exchange: expected here.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _handler_for(server: ProviderServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the clients' connection pools expect
        disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stalls

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            request = RecordedRequest(
                method="POST",
                path=self.path,
                headers={name.lower(): value for name, value in self.headers.items()},
                body=self.rfile.read(length),
                client_port=self.client_address[1],
            )
            try:
                _respond(self, server._next(request))
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (timeout tests)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler


def _respond(handler: BaseHTTPRequestHandler, scripted: ScriptedResponse) -> None:
    if scripted.delay_s and scripted.stall_after is None:
        time.sleep(scripted.delay_s)
    handler.send_response(scripted.status)
    for name, value in scripted.headers.items():
        handler.send_header(name, value)
    if scripted.sse is None:
        body = scripted.raw_body()
        if "content-type" not in {name.lower() for name in scripted.headers}:
            handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
        return
    handler.send_header("content-type", "text/event-stream")
    handler.send_header("transfer-encoding", "chunked")
    handler.end_headers()
    for index, frame in enumerate(scripted.sse_frames()):
        if index == scripted.stall_after:
            time.sleep(scripted.delay_s)
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
        handler.wfile.flush()
    handler.wfile.write(b"0\r\n\r\n")
    handler.wfile.flush()
