"""A real local HTTP server speaking kdstore's teacher protocol, for the HTTP teacher tests.

``serve(model, behavior=...)`` starts a ThreadingHTTPServer on 127.0.0.1 (port 0) in a thread and
yields a :class:`Server` with its URL and request counters. Behaviors: ``ok`` (serve the ONNX
model), ``fail`` (always HTTP 500), ``flaky`` (500 for the first ``fail_first`` POSTs), ``stall``
(sleep ``stall`` seconds first), ``malformed`` (200 with a body that is not JSON), ``wrong_rows``
(one row too few), ``not_found`` (404), ``fail_after`` (500 after ``fail_after`` good POSTs).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from kdstore.teachers.http import ARROW_STREAM, decode_arrow, encode_arrow


@dataclass
class Server:
    url: str
    posts: int = 0
    gets: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextlib.contextmanager
def serve(model: onnx.ModelProto, behavior: str = "ok", *, stall: float = 1.0, fail_first: int = 2,
          fail_after: int = 1, delay: float = 0.0) -> Iterator[Server]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    inputs = [{"name": i.name, "dtype": "float32", "shape": [d if isinstance(d, int) else None for d in i.shape]}
              for i in session.get_inputs()]
    outputs = [{"name": o.name} for o in session.get_outputs()]
    state = Server(url="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(OSError):
                self.wfile.write(body)

        def do_GET(self) -> None:
            with state.lock:
                state.gets += 1
            self._send(200, json.dumps({"inputs": inputs, "outputs": outputs}).encode())

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with state.lock:
                state.posts += 1
                n_post = state.posts
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            try:
                self._post(body, n_post)
            finally:
                with state.lock:
                    state.in_flight -= 1

        def _post(self, body: bytes, n_post: int) -> None:
            if delay:
                time.sleep(delay)
            if behavior == "fail" or (behavior == "flaky" and n_post <= fail_first) or (
                    behavior == "fail_after" and n_post > fail_after):
                self._send(500, b'{"error": "boom"}')
                return
            if behavior == "not_found":
                self._send(404, b"no such model")
                return
            if behavior == "stall":
                time.sleep(stall)
            if behavior == "malformed":
                self._send(200, b"<html>this is not json</html>")
                return
            arrow = self.headers.get("Content-Type", "").startswith(ARROW_STREAM)
            if arrow:
                feeds = decode_arrow(body)
                assert isinstance(feeds, dict)
            else:
                feeds = {k: np.asarray(v) for k, v in json.loads(body)["inputs"].items()}
            feeds = {k: np.asarray(v, dtype=np.float32) for k, v in feeds.items()}
            names = [o["name"] for o in outputs]
            result = dict(zip(names, session.run(names, feeds), strict=True))
            if behavior == "wrong_rows":
                result = {k: v[:-1] for k, v in result.items()}
            if arrow:
                self._send(200, encode_arrow(result), ARROW_STREAM)
            else:
                self._send(200, json.dumps({"outputs": {k: v.tolist() for k, v in result.items()}}).encode())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1/model"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
