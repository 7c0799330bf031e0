"""A real GCS JSON-API server on 127.0.0.1 for the fault suite, behind a proxy that injects the store's failures.

:class:`GcsEmulator` runs ``gcp-storage-emulator`` (PyPI) as a child process, storing objects on disk under a test
folder, so it can be SIGKILLed and started again with its objects kept. :class:`FaultProxy` sits between gcsfs and
it (gcsfs is pointed at the proxy through ``STORAGE_EMULATOR_HOST``, its endpoint setting) and forwards every request,
except those its fault plan takes:

* ``status``: answer the next ``n`` matching requests with 503 without forwarding them;
* ``drop``: read half of a matching request's body (an upload) or send half of a response's body (a download), then
  close the connection: a connection dropped mid-object;
* ``down``: close every connection at once, as a server that went away does (the emulator is stopped too).

The emulator lacks the ``objects.moveTo`` call gcsfs tries first for a move (it answers 501, which gcsfs retries for
~31 s before it falls back to copy + delete); the proxy answers it 400 at once, so gcsfs falls back immediately, as
it does on a bucket where the call is refused.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.faults.harness import ChildServer
from tests.spark_cluster import free_port

HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection", "host"}


class GcsEmulator(ChildServer):
    """``gcp-storage-emulator start`` on a free port with ``bucket`` created and objects on disk in ``folder``."""

    def __init__(self, folder: Path, bucket: str = "glc") -> None:
        self.folder, self.bucket = folder, bucket
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.stop_timeout_s = 15

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60) -> None:
        exe = Path(sys.executable).with_name("gcp-storage-emulator")
        self.folder.mkdir(parents=True, exist_ok=True)
        log = open(self.folder / "emulator.log", "ab")  # noqa: SIM115 (the child keeps it open)
        self.proc = subprocess.Popen(
            [
                str(exe),
                "-d",
                str(self.folder / "data"),
                "start",
                "--port",
                str(self.port),
                "-H",
                "127.0.0.1",
                "--default-bucket",
                self.bucket,
                "-q",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"gcp-storage-emulator exited {self.proc.returncode}; see {self.folder}/emulator.log"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"gcp-storage-emulator did not listen on {self.url} within {timeout_s} s")


@dataclass
class FaultPlan:
    """What the proxy does to the next matching requests (thread-safe counters)."""

    status_left: int = 0
    drop_left: int = 0
    down: bool = False
    #: a fault on every ``spacing``-th matching request (spread out, so no request exhausts the client's retries)
    spacing: int = 1
    #: which requests a fault applies to: ``(method, path) -> bool``
    match: Callable[[str, str], bool] = lambda method, path: True
    #: called (once) on the first request the plan matches while ``on_match`` is set; e.g. to stop the server
    on_match: Callable[[], None] | None = None
    seen: list[str] = field(default_factory=list)
    matched: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, method: str, path: str) -> str | None:
        """The fault for this request (``"status"``, ``"drop"``, ``"down"``) or None; counts it."""
        with self.lock:
            if not self.match(method, path):
                return "down" if self.down else None
            if self.on_match is not None:
                hook, self.on_match = self.on_match, None
                hook()
            if self.down:
                self.seen.append(f"down {method} {path}")
                return "down"
            self.matched += 1
            if self.matched % self.spacing:
                return None
            if self.status_left > 0:
                self.status_left -= 1
                self.seen.append(f"503 {method} {path}")
                return "status"
            if self.drop_left > 0:
                self.drop_left -= 1
                self.seen.append(f"drop {method} {path}")
                return "drop"
            return None


def is_upload(method: str, path: str) -> bool:
    """An object upload (JSON API media / multipart / resumable)."""
    return method in ("POST", "PUT") and path.startswith("/upload/")


def is_download(method: str, path: str) -> bool:
    """An object download (``alt=media``)."""
    return method == "GET" and "alt=media" in path


class FaultProxy:
    """An HTTP proxy on a free 127.0.0.1 port in front of ``upstream`` (``http://host:port``), applying :attr:`plan`."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.removeprefix("http://")
        #: fault plans, asked in order; the first that returns a fault applies (``plan`` is the first)
        self.plans = [FaultPlan()]
        self.requests = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    return self.rfile.read(n)
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                return b""

            def _drop(self) -> None:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

            def _answer(self, status: int, message: str) -> None:
                msg = json.dumps({"error": {"code": status, "message": message}}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(msg)))
                self.end_headers()
                self.wfile.write(msg)

            def _any(self) -> None:
                proxy.requests += 1
                if self.command == "POST" and "/moveTo/" in self.path:
                    self._body()
                    return self._answer(400, "moveTo is not implemented by the emulator")
                fault = next((f for f in (pl.take(self.command, self.path) for pl in proxy.plans) if f), None)
                if fault == "down":
                    return self._drop()
                if fault == "drop" and is_upload(self.command, self.path):
                    n = int(self.headers.get("Content-Length") or 0)
                    self.rfile.read(max(1, n // 2))
                    return self._drop()
                body = self._body()
                if fault == "status":
                    return self._answer(503, "injected by the fault proxy")
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
                try:
                    conn = http.client.HTTPConnection(proxy.upstream, timeout=60)
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    conn.close()
                except OSError:
                    return self._drop()  # the server is gone: the client sees a dropped connection
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in HOP and k.lower() != "content-length":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if fault == "drop" and len(data) > 1:  # a download cut off mid-object
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    return self._drop()
                self.wfile.write(data)
                return None

            def handle_one_request(self) -> None:
                try:
                    super().handle_one_request()
                except (BrokenPipeError, ConnectionResetError):  # the client gave up on this connection
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def plan(self) -> FaultPlan:
        return self.plans[0]

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
