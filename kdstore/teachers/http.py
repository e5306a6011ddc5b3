"""HTTP teachers: a model hosted behind an endpoint, called with batches of feature rows.

The protocol (see docs/teachers.md) is small and has two encodings:

* ``GET <url>`` (optional) answers ``{"inputs": [{"name", "dtype", "shape"}], "outputs": [...]}``:
  the model's signature, used when ``signature=`` is not given.
* ``POST <url>`` with ``Content-Type: application/json`` and body
  ``{"inputs": {name: [[...], ...]}, "outputs": [names]}`` answers
  ``{"outputs": {name: [[...], ...]}}``, one row per input row.
* ``POST <url>`` with ``Content-Type: application/vnd.apache.arrow.stream``: the body is an Arrow
  IPC stream with one column per input (a fixed-size list per row for vector inputs; the wanted
  output names in the schema metadata key ``kdstore.outputs``); the answer is an IPC stream with
  one column per output.

Requests time out (``timeout`` seconds per socket operation), are retried on connection errors,
timeouts, HTTP 429 and 5xx (``retries`` times, backoff ``backoff * 2**attempt`` seconds), and at
most ``max_concurrency`` are in flight per teacher. A malformed answer or another 4xx fails at once.
Only the standard library is used.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import threading
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa

from kdstore.errors import TeacherError
from kdstore.teachers.spec import TensorSpec, check_output_config, describe_signature, input_map, session_outputs

ARROW_STREAM = "application/vnd.apache.arrow.stream"
FORMATS = ("json", "arrow")
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class _Retryable(Exception):
    """A failure worth another attempt (connection, timeout, 5xx)."""


class HttpTeacher:
    """A teacher served over HTTP.

    Args:
        url: the endpoint (``http://`` or ``https://``).
        name, labels, output_type, output, embedding, inputs, scores, threshold: as for
            :class:`~kdstore.teachers.OnnxTeacher`; ``output`` defaults to the first output the
            endpoint's ``GET`` lists (``"output"`` if it lists none).
        signature: the model inputs; default: asked from the endpoint with ``GET``.
        format: ``json`` or ``arrow`` (Arrow IPC stream) request and answer bodies.
        timeout: seconds per socket operation (connect, send, each read).
        retries: extra attempts after a retryable failure.
        backoff: first pause between attempts, doubled each time.
        max_concurrency: requests in flight at once for this teacher.
        request_rows: rows per request.
        headers: extra request headers (e.g. authorization); not stored in the fingerprint.
    """

    kind = "http"

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        labels: Sequence[str | int] = (),
        output_type: str = "multiclass",
        output: str | None = None,
        embedding: str | None = None,
        inputs: Mapping[str, str | Sequence[str]] | None = None,
        signature: Sequence[TensorSpec] | None = None,
        scores: str = "probabilities",
        format: str = "json",
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_concurrency: int = 4,
        request_rows: int = 1024,
        headers: Mapping[str, str] | None = None,
        threshold: float | None = None,
    ):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TeacherError(f"HTTP teacher url must be http:// or https:// with a host, got {url!r}")
        if format not in FORMATS:
            raise TeacherError(f"HTTP teacher {url}: format must be one of {FORMATS}, got {format!r}")
        if timeout <= 0 or retries < 0 or backoff < 0 or max_concurrency < 1 or request_rows < 1:
            raise TeacherError(
                f"HTTP teacher {url}: timeout, max_concurrency and request_rows must be positive, retries and backoff >= 0"
            )
        self.url = url
        self.name = name if name is not None else (parts.hostname + parts.path).strip("/")
        self.labels = tuple(labels)
        self.output_type = output_type
        self.scores = scores
        self.threshold = threshold
        self.input_map = input_map(inputs)
        self.format = format
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.max_concurrency = int(max_concurrency)
        self.request_rows = int(request_rows)
        self.headers = dict(headers or {})
        self._output = output
        self._embedding = embedding
        self._signature = tuple(signature) if signature is not None else None
        self._meta: dict[str, Any] | None = None
        self._lock = threading.Lock()
        check_output_config(self.name, output_type, len(self.labels), scores)

    def __repr__(self) -> str:
        return f"HttpTeacher({self.url!r}, name={self.name!r}, output_type={self.output_type!r})"

    @property
    def uri(self) -> str:
        return self.url

    def _metadata(self) -> dict[str, Any]:
        with self._lock:
            if self._meta is None:
                client = _Client(self)
                try:
                    self._meta = client.get_json()
                finally:
                    client.close()
            return self._meta

    def signature(self) -> tuple[TensorSpec, ...]:
        if self._signature is None:
            meta = self._metadata()
            if not isinstance(meta.get("inputs"), list) or not meta["inputs"]:
                raise TeacherError(
                    f"HTTP teacher {self.name!r}: GET {self.url} did not describe the inputs "
                    '({"inputs": [{"name", "dtype", "shape"}]}); pass signature= instead'
                )
            self._signature = tuple(TensorSpec.from_json(x) for x in meta["inputs"])
        return self._signature

    @property
    def output(self) -> str:
        if self._output is None:
            try:
                outs = self._metadata().get("outputs")
            except TeacherError as e:
                raise TeacherError(f"{e}; pass output= to name the output without asking the endpoint") from None
            if isinstance(outs, list) and outs and isinstance(outs[0], Mapping) and "name" in outs[0]:
                self._output = str(outs[0]["name"])
            else:
                self._output = "output"
        return self._output

    @property
    def embedding(self) -> str | None:
        return self._embedding

    def input_type(self) -> str:
        return describe_signature(self.signature())

    def config(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "embedding": self._embedding,
            "inputs": self.input_map,
            "scores": self.scores,
            "signature": [s.to_json() for s in self.signature()],
            "format": self.format,
            "timeout": self.timeout,
            "retries": self.retries,
            "backoff": self.backoff,
            "max_concurrency": self.max_concurrency,
            "request_rows": self.request_rows,
        }

    def fingerprint(self) -> str:
        """SHA-256 of the url and of everything that decides the outputs (not transport settings)."""
        what = {
            "url": self.url, "output": self.output, "embedding": self._embedding, "inputs": self.input_map,
            "scores": self.scores, "signature": [s.to_json() for s in self.signature()],
        }
        return "sha256:" + hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()

    def open(self, *, threads: int = 1) -> HttpSession:
        """A session: requests go through a pool of ``max_concurrency`` threads (``threads`` is unused)."""
        return HttpSession(self)


class _Client:
    """One request at a time per thread over a kept-alive connection, with timeouts and retries."""

    def __init__(self, teacher: HttpTeacher):
        self.t = teacher
        parts = urllib.parse.urlsplit(teacher.url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.local = threading.local()
        self.open_conns: set[http.client.HTTPConnection] = set()
        self.lock = threading.Lock()

    def _conn(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self.local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            conn = cls(self.host, self.port, timeout=self.t.timeout)
            self.local.conn = conn
            with self.lock:
                self.open_conns.add(conn)
        return conn

    def _drop(self) -> None:
        conn = getattr(self.local, "conn", None)
        if conn is not None:
            conn.close()
            self.local.conn = None
            with self.lock:
                self.open_conns.discard(conn)

    def request(self, method: str, body: bytes | None, content_type: str | None, what: str) -> tuple[str, bytes]:
        """(content type, body) of a 200 answer; retries retryable failures, then raises."""
        t = self.t
        last = ""
        attempts = 0
        for attempt in range(t.retries + 1):
            attempts = attempt + 1
            try:
                return self._once(method, body, content_type)
            except _Retryable as e:
                last = str(e)
            except TeacherError as e:
                raise TeacherError(f"HTTP teacher {t.name!r}: {method} {t.url} {what}: {e}") from None
            if attempt < t.retries:
                time.sleep(t.backoff * (2**attempt))
        raise TeacherError(f"HTTP teacher {t.name!r}: {method} {t.url} {what} failed after {attempts} attempt(s): {last}")

    def _once(self, method: str, body: bytes | None, content_type: str | None) -> tuple[str, bytes]:
        headers = {"Accept": ARROW_STREAM if self.t.format == "arrow" else "application/json", **self.t.headers}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            conn = self._conn()
            conn.request(method, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except (TimeoutError, OSError, http.client.HTTPException) as e:
            self._drop()
            kind = "timed out" if isinstance(e, TimeoutError) else f"{type(e).__name__}: {e}"
            raise _Retryable(kind) from None
        if resp.getheader("Connection", "").lower() == "close" or resp.will_close:
            self._drop()
        if resp.status in _RETRY_STATUS or resp.status >= 500:
            raise _Retryable(f"HTTP {resp.status} {resp.reason}: {data[:200]!r}")
        if resp.status != 200:
            raise TeacherError(f"HTTP {resp.status} {resp.reason}: {data[:200]!r}")
        return resp.getheader("Content-Type", ""), data

    def get_json(self) -> dict[str, Any]:
        _, data = self.request("GET", None, None, "(signature)")
        try:
            meta = json.loads(data)
        except ValueError as e:
            raise TeacherError(f"HTTP teacher {self.t.name!r}: GET {self.t.url} answered malformed JSON: {e}") from None
        if not isinstance(meta, dict):
            raise TeacherError(f"HTTP teacher {self.t.name!r}: GET {self.t.url} answered {type(meta).__name__}, not an object")
        return meta

    def close(self) -> None:
        """Close every kept-alive connection (those of other threads too)."""
        with self.lock:
            conns, self.open_conns = list(self.open_conns), set()
        for conn in conns:
            conn.close()


class HttpSession:
    """A running :class:`HttpTeacher`: ``run(feeds)`` posts the rows in chunks and joins the answers."""

    def __init__(self, teacher: HttpTeacher):
        self.teacher = teacher
        self.score_output, self.embedding_output, self.names = session_outputs(
            teacher.output_type, teacher.output, teacher.embedding)
        self.client = _Client(teacher)
        self.pool = ThreadPoolExecutor(max_workers=teacher.max_concurrency, thread_name_prefix=f"kdstore-http-{teacher.name}")

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(next(iter(feeds.values())))
        step = self.teacher.request_rows
        spans = [(lo, min(lo + step, n)) for lo in range(0, n, step)]
        futures = [self.pool.submit(self._post, {k: v[lo:hi] for k, v in feeds.items()}, lo, hi) for lo, hi in spans]
        try:
            parts = [f.result() for f in futures]  # the first failure (in row order) is raised
        except BaseException:
            for f in futures:
                f.cancel()  # requests not yet sent are not sent
            raise
        return {k: np.concatenate([p[k] for p in parts]) for k in self.names} if parts else {}

    def _post(self, feeds: Mapping[str, np.ndarray], lo: int, hi: int) -> dict[str, np.ndarray]:
        t = self.teacher
        what = f"for rows {lo}..{hi - 1} of the batch"
        if t.format == "json":
            body = json.dumps({"inputs": {k: v.tolist() for k, v in feeds.items()}, "outputs": self.names}).encode()
            _, data = self.client.request("POST", body, "application/json", what)
            outs = _parse_json(data)
        else:
            _, data = self.client.request("POST", encode_arrow(feeds, self.names), ARROW_STREAM, what)
            outs = decode_arrow(data)
        result: dict[str, np.ndarray] = {}
        for k in self.names:
            if isinstance(outs, str):
                reason = outs
            elif k not in outs:
                reason = f"the answer has no output {k!r} (it has {sorted(outs)[:8]})"
            else:
                try:
                    arr = np.asarray(outs[k])
                except ValueError as e:
                    reason = f"output {k!r} is ragged: {e}"
                else:
                    if arr.ndim == 0 or arr.shape[0] != hi - lo or arr.dtype.kind not in "fiub":
                        reason = (
                            f"output {k!r} has shape {list(arr.shape)} and type {arr.dtype} for {hi - lo} rows "
                            "(expected numbers, one row per input row)"
                        )
                    else:
                        result[k] = arr
                        continue
            raise TeacherError(f"HTTP teacher {t.name!r}: POST {t.url} {what}: malformed answer: {reason}")
        return result

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.client.close()


def _parse_json(data: bytes) -> dict[str, Any] | str:
    try:
        obj = json.loads(data)
    except ValueError as e:
        return f"not JSON ({e}): {data[:80]!r}"
    if not isinstance(obj, dict) or not isinstance(obj.get("outputs"), dict):
        return 'expected {"outputs": {name: rows}}, got ' + repr(obj)[:80]
    outputs: dict[str, Any] = obj["outputs"]
    return outputs


def encode_arrow(arrays: Mapping[str, np.ndarray], outputs: Sequence[str] = ()) -> bytes:
    """Arrays (first dim = rows) -> an Arrow IPC stream: one column per array, vectors as fixed-size lists."""
    cols = {}
    for k, v in arrays.items():
        a = np.asarray(v)
        if a.ndim <= 1:
            cols[k] = pa.array(a if a.dtype != object else a.tolist())
        else:
            flat = a.reshape(len(a), -1)
            cols[k] = pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(flat).ravel()), flat.shape[1])
    table = pa.table(cols)
    if outputs:
        table = table.replace_schema_metadata({"kdstore.outputs": json.dumps(list(outputs))})
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def decode_arrow(data: bytes) -> dict[str, np.ndarray] | str:
    """An Arrow IPC stream -> {column: array [rows, ...]}, or a reason it is malformed."""
    try:
        table = pa.ipc.open_stream(data).read_all()
    except (pa.ArrowInvalid, OSError) as e:
        return f"not an Arrow IPC stream ({e})"
    out: dict[str, np.ndarray] = {}
    for name in table.column_names:
        col = table.column(name).combine_chunks()
        if pa.types.is_fixed_size_list(col.type) or pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
            n = len(col)
            values = np.asarray(col.flatten().to_numpy(zero_copy_only=False))
            if n and values.size % n:
                return f"column {name!r} has rows of different lengths"
            out[name] = values.reshape(n, -1) if n else values.reshape(0, 0)
        else:
            out[name] = np.asarray(col.to_numpy(zero_copy_only=False))
    return out


__all__ = ["ARROW_STREAM", "FORMATS", "HttpSession", "HttpTeacher", "decode_arrow", "encode_arrow"]
