"""A small fault-injecting HTTP proxy in front of moto's S3 server, for tests that S3 faults are survived.

Each request is forwarded to the upstream endpoint unless the policy injects a fault instead:

* with probability ``fail_rate``: ``500 InternalError``, ``503 SlowDown``, a dropped connection (no
  response at all) or a stall (no response for ``stall_seconds``, longer than the client's read timeout);
* a GET whose path contains one of ``poisoned``: ``500`` every time (an object that stays unreadable);
* once ``deny_writes`` is set: ``403 AccessDenied`` for every PUT/POST (a destination that became
  unwritable: credentials revoked, bucket policy changed, quota); ``deny_writes_after`` sets it as soon as
  a write whose path contains that string has passed (e.g. the first manifest fragment: no race with the run).

Counters say what happened, so a test can check that faults really were injected and retried.
"""

from __future__ import annotations

import http.client
import random
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

ERROR_XML = (
    '<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message>'
    "<RequestId>fault-proxy</RequestId></Error>"
)
FAULTS = ("500", "503", "drop", "stall")


class FaultProxy:
    def __init__(self, upstream: str, fail_rate: float = 0.05, seed: int = 7, stall_seconds: float = 2.0) -> None:
        self.upstream = urlparse(upstream)
        self.fail_rate = fail_rate
        self.stall_seconds = stall_seconds
        self.poisoned: set[str] = set()
        self.deny_writes = False
        self.deny_writes_after: str | None = None
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.injected: Counter[str] = Counter()
        self.forwarded = 0
        self.requests: Counter[str] = Counter()  # "METHOD path" -> times seen (retries included)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet
                return

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b""):
                                pass
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _error(self, status: int, code: str, message: str) -> None:
                body = ERROR_XML.format(code=code, message=message).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                body = self._body()
                fault = proxy._decide(self.command, self.path)
                if fault == "403":
                    return self._error(403, "AccessDenied", "Access Denied (fault proxy: writes denied)")
                if fault in ("500", "poisoned"):
                    return self._error(500, "InternalError", "We encountered an internal error (fault proxy)")
                if fault == "503":
                    return self._error(503, "SlowDown", "Please reduce your request rate (fault proxy)")
                if fault == "stall":
                    time.sleep(proxy.stall_seconds)
                if fault in ("drop", "stall"):
                    self.close_connection = True
                    self.connection.close()
                    return None
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("transfer-encoding",)}
                if body or self.command in ("PUT", "POST"):
                    headers["Content-Length"] = str(len(body))
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()
                return None

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _decide(self, method: str, path: str) -> str | None:
        with self.lock:
            self.requests[f"{method} {path}"] += 1
            if self.deny_writes and method in ("PUT", "POST"):
                fault: str | None = "403"
            elif method in ("PUT", "POST") and self.deny_writes_after and self.deny_writes_after in path:
                fault, self.deny_writes, self.forwarded = None, True, self.forwarded + 1  # this one passes
            elif method == "GET" and any(p in path for p in self.poisoned):
                fault = "poisoned"
            elif self.rng.random() < self.fail_rate:
                fault = self.rng.choice(FAULTS)
            else:
                fault = None
                self.forwarded += 1
            if fault:
                self.injected[fault] += 1
            return fault

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
