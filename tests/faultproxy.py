"""A fault-injecting HTTP proxy in front of a sandbox's moto server.

Why a proxy and not botocore event hooks: the runbook's sections run in
Jupyter kernels of their own (child processes of ``runbook run``), so a hook
registered in the test process would never see their calls, and a hook
smuggled into the library would be the library testing itself. A proxy is
what a real outage looks like from the client: botocore gets a real 503, a
real throttling error body, or a real TCP reset, and its own retry logic
(``runbook.targets.CLIENT_CONFIG``) has to deal with it. The audit log then
shows what the client saw.

Usage: ``proxy = FaultProxy.install(home)`` starts the proxy on a free port,
forwarding to the sandbox recorded in ``home``'s ``state.json``, and points
that state file at the proxy, so every later ``Context`` (in any process)
talks through it. ``proxy.fail(...)`` adds a fault; ``proxy.uninstall()``
puts the state file back and stops the proxy.

A fault matches an AWS operation (the query protocol's ``Action``, e.g.
``CreateUser``) and fails it ``times`` times (``None``: every time):

- ``kind="503"``: HTTP 503 with a ``ServiceUnavailable`` error body;
- ``kind="Throttling"`` / ``"RequestLimitExceeded"``: HTTP 400 with that error code;
- ``kind="reset"``: the TCP connection is reset, no answer at all.

``when="before"`` fails the request before moto sees it; ``when="after"``
forwards it (moto acts) and then loses the answer: the case where a retried
mutation could do its work twice.
"""

from __future__ import annotations

import http.client
import json
import socket
import struct
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

KINDS = ("503", "Throttling", "RequestLimitExceeded", "reset")


@dataclass
class Fault:
    operation: str
    kind: str
    times: int | None = 1     # None: persistent
    when: str = "before"      # before | after (moto acted, the answer is lost)
    injected: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS or self.when not in ("before", "after"):
            raise ValueError(f"bad fault {self}")

    @property
    def active(self) -> bool:
        return self.times is None or self.injected < self.times


def _error_body(code: str, message: str) -> bytes:
    # The query-protocol error shape IAM and STS answer with.
    return (f'<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
            f"<Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
            f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>").encode()


@dataclass
class FaultProxy:
    upstream: str
    home: Path | None = None
    faults: list[Fault] = field(default_factory=list)
    seen: list[str] = field(default_factory=list, repr=False)  # every operation that came by
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)
    # The state file holds the operator's secret: never in a repr or an assertion message.
    _original_state: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def injected(self) -> int:
        return sum(f.injected for f in self.faults)

    def fail(self, operation: str, kind: str, times: int | None = 1,
             when: str = "before") -> Fault:
        fault = Fault(operation, kind, times, when)
        self.faults.append(fault)
        return fault

    def clear(self) -> None:
        """The outage ends: no fault fires again (their counts stay)."""
        for fault in self.faults:
            fault.times = fault.injected

    # --- lifecycle ---

    def start(self) -> "FaultProxy":
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet: the audit log is the record
                pass

            def do_GET(self):
                proxy._handle(self)

            def do_POST(self):
                proxy._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    @classmethod
    def install(cls, home: Path) -> "FaultProxy":
        """Start a proxy in front of ``home``'s running sandbox and point its state at it."""
        state_path = Path(home) / "sandbox" / "state.json"
        original = state_path.read_text()
        state = json.loads(original)
        proxy = cls(upstream=state["endpoint"], home=Path(home)).start()
        proxy._original_state = original
        state_path.write_text(json.dumps({**state, "endpoint": proxy.url}, indent=2))
        return proxy

    def uninstall(self) -> None:
        if self.home and self._original_state is not None:
            (self.home / "sandbox" / "state.json").write_text(self._original_state)
        self.stop()

    # --- the work ---

    def _match(self, operation: str, when: str) -> Fault | None:
        for fault in self.faults:
            if fault.operation == operation and fault.when == when and fault.active:
                fault.injected += 1
                return fault
        return None

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        operation = (parse_qs(body.decode("utf-8", "replace")).get("Action") or [""])[0]
        if operation:
            self.seen.append(operation)
        fault = self._match(operation, "before") if operation else None
        if fault:
            return self._inject(handler, fault)
        status, headers, answer = self._forward(handler, body)
        fault = self._match(operation, "after") if operation else None
        if fault:
            return self._inject(handler, fault)
        handler.send_response(status)
        for name, value in headers:
            if name.lower() not in ("content-length", "transfer-encoding", "connection",
                                    "server", "date"):
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(answer)))
        handler.end_headers()
        handler.wfile.write(answer)

    def _forward(self, handler: BaseHTTPRequestHandler, body: bytes):
        parts = urlsplit(self.upstream)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() != "connection"}
            connection.request(handler.command, handler.path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def _inject(self, handler: BaseHTTPRequestHandler, fault: Fault) -> None:
        if fault.kind == "reset":
            # SO_LINGER 0 makes close() send RST: the client sees "connection reset by peer".
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                          struct.pack("ii", 1, 0))
            handler.close_connection = True
            handler.connection.close()
            return
        if fault.kind == "503":
            status, payload = 503, _error_body("ServiceUnavailable", "Service is unavailable "
                                                                     "(injected by the test)")
        else:
            status, payload = 400, _error_body(fault.kind, "Rate exceeded (injected by the test)")
        handler.send_response(status)
        handler.send_header("Content-Type", "text/xml")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
