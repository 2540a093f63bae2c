"""What every PSA simulator shares: a threading HTTP server on 127.0.0.1 and the controls
tests use to make the vendor misbehave, the same for every vendor.

A vendor module subclasses `SimulatorBase`, names its API prefix, and writes `_answer`
(routing, auth, paging, record shapes) and its error bodies. The base gives it:

- lifecycle: `start()` / `stop()` or a context manager, `port`, `base_url`, optional TLS with
  a throw-away self-signed certificate (`ca_file`);
- request gates: `fail_next(n, status)`, `rate_limit = (max_requests, window_seconds)` (a
  sliding window; beyond it the vendor's 429 with an integer `Retry-After`), `latency`
  (seconds every API answer waits);
- broken transfers: `break_transfers(mode, path=, page=, first=)` / `mend_transfers()`;
- pages that do not add up: `short_page(path, page, keep=, first=)`, `lie_about_count(path,
  by)`, `mend_pages()`;
- bad records: `malformed[kind]` (served as given) and `poison[kind]` (raw JSON texts, e.g.
  `nested_record(id, 990)`), both at the end of page 1 and counted;
- counters: `requests`, `requests_by_path` (API path below the prefix), `request_times`,
  `reset_counts()`;
- the live `dataset` (tests edit its lists under `lock`; `_snapshot(kind)` sees the edits);
- `touch(share, seed)`: a share of the companies, contacts and configurations changed now.

Paths in the controls above are API paths below the vendor's prefix, as `requests_by_path` shows
them.

For a benchmark that runs the simulator in a process of its own, a few of these are HTTP
controls outside every vendor's API (the server listens on 127.0.0.1 only):
`GET /_simulator/stats` (API requests, requests outside the API such as sign-in or discovery,
429s of the rate limit), `POST
/_simulator/touch?share=0.01&seed=N` (what `touch` changed, per kind) and `POST
/_simulator/rate-limit?requests=N&seconds=W` (`rate_limit`; `requests=0` lifts it).
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import socket
import ssl
import struct
import sys
import tempfile
import threading
import time
from bisect import bisect_right
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from operator import itemgetter
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from hg_pipeline.simulators.datasets import Dataset, generate


# HTTP controls for a benchmark that runs the simulator in another process (module docstring).
STATS_PATH = "/_simulator/stats"
TOUCH_PATH = "/_simulator/touch"
RATE_LIMIT_PATH = "/_simulator/rate-limit"
# What `touch` changes: dataset kind -> the visible field it edits (besides _info.lastUpdated).
TOUCHED_FIELDS = {"companies": "name", "contacts": "lastName", "configurations": "name"}
_EDIT_MARK = re.compile(r" \(edit (\d+)\)$")


class ApiError(Exception):
    """An error answer: HTTP status, a short code and a message; the simulator writes the body."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


class RawJson(str):
    """A body already written as JSON text (sent as is)."""


class PlainText(str):
    """A body sent as text/plain."""


def nested_record(record_id: int, depth: int, **fields) -> str:
    """The JSON text of a record with `id`, `fields` and a value nested `depth` levels deep
    (its own object included), which `json.dumps` of a Python object could not write."""
    head = json.dumps({"id": record_id, **fields}, separators=(",", ":"))[:-1]
    inner = max(depth - 1, 0)
    return f'{head},"nested":{"[" * inner}{"]" * inner}}}'


def json_list(records: list, poison: list[str] = ()) -> str:
    """JSON text of `records` followed by the raw JSON texts in `poison`."""
    return "[" + ",".join([json.dumps(r, separators=(",", ":")) for r in records] + list(poison)) + "]"


STATUS_CODES = {
    429: "TooManyRequests", 500: "UnexpectedServerError", 502: "BadGateway",
    503: "ServiceUnavailable", 504: "GatewayTimeout", 401: "Unauthorized", 403: "Forbidden",
}

# Transfer faults: how the body of an answer is spoiled (see `SimulatorBase.break_transfers`).
TRANSFER_FAULTS = ("cut_body", "reset_mid_body", "drip", "bad_gzip", "bad_utf8", "bad_json")


@dataclass
class _TransferFault:
    mode: str
    path: str | None  # an API path below the prefix; None: every API path
    page: int | None  # only requests for this page; None: any
    remaining: int | None  # answers still to spoil; None: every one
    interval: float  # drip: seconds between two bytes

    def applies(self, endpoint: str, page: str | None) -> bool:
        return (self.remaining != 0 and self.path in (None, endpoint)
                and (self.page is None or page == str(self.page)))

    def spoiled(self, data: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
        """The body and headers to announce: undecodable bodies replace the real one."""
        if self.mode == "bad_gzip":
            return data, {**headers, "Content-Encoding": "gzip"}
        if self.mode == "bad_utf8":
            return data[:1] + b"\xff" + data[1:], headers
        if self.mode == "bad_json":
            return data[:-1], headers
        return data, headers


@dataclass
class _ShortPage:
    path: str
    page: int
    keep: int  # records of the page served
    remaining: int | None  # answers still to shorten; None: every one


class _Gate:
    """Injected failures and the sliding-window rate limit, shared by all handler threads.

    `too_many(wait_seconds)` and `failure(status, retry_after)` make the vendor's errors."""

    def __init__(self, too_many: Callable[[int], ApiError], failure: Callable[[int, int | None], ApiError]) -> None:
        self.lock = threading.Lock()
        self.failures: deque[tuple[int, int | None]] = deque()
        self.rate_limit: tuple[int, float] | None = None
        self.window: deque[float] = deque()
        self.rejected = 0  # requests answered 429 by the rate limit
        self._too_many = too_many
        self._failure = failure

    def check(self) -> None:
        with self.lock:
            if self.rate_limit is not None:
                max_requests, window_seconds = self.rate_limit
                now = time.monotonic()
                while self.window and self.window[0] <= now - window_seconds:
                    self.window.popleft()
                if len(self.window) >= max_requests:
                    self.rejected += 1
                    raise self._too_many(max(1, math.ceil(self.window[0] + window_seconds - now)))
                self.window.append(now)
            if self.failures:
                raise self._failure(*self.failures.popleft())


# --- the server --------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so clients can pool connections
    # Headers and body go out in separate writes: with Nagle's algorithm the body waits for the
    # client's delayed ACK (40 ms a request on Linux), which no real PSA adds.
    disable_nagle_algorithm = True
    sim: "SimulatorBase"  # set on the subclass made per simulator
    body: bytes = b""  # the request body (read before answering)

    def setup(self) -> None:
        super().setup()
        with self.sim._count_lock:
            self.sim._connections.add(self.connection)

    def finish(self) -> None:
        with self.sim._count_lock:
            self.sim._connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - quiet by default
        if self.sim.verbose:
            super().log_message(format, *args)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        target = urlsplit(self.path)
        if target.path in _CONTROLS:  # the simulator's own controls, outside every vendor's API
            self._send(*self.sim._control(self.command, target.path, parse_qs(target.query)), {})
            return
        with self.sim._count_lock:
            self.sim._received += 1
        fault = self.sim._transfer_fault(self.path)
        try:
            release = self.sim._occupy(self)
        except ApiError as error:
            self._send(error.status, self.sim.error_body(error), error.headers)
            return
        try:
            try:
                status, body, headers = self.sim._answer(self)
            except ApiError as error:
                status, body, headers = error.status, self.sim.error_body(error), error.headers
            except Exception as error:  # noqa: BLE001 - a simulator bug must still answer
                status, body, headers = 500, self.sim.error_body(
                    ApiError(500, "UnexpectedServerError", type(error).__name__)), {}
            self._send(status, body, headers, fault)
        finally:
            release()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle  # noqa: N815

    def _send(self, status: int, body, headers: dict[str, str], fault: _TransferFault | None = None) -> None:
        content_type = "application/json; charset=utf-8"
        if isinstance(body, PlainText):
            data, content_type = body.encode(), "text/plain; charset=utf-8"
        elif isinstance(body, RawJson):
            data = body.encode()
        else:
            data = json.dumps(body, separators=(",", ":")).encode()
        if fault is not None:
            data, headers = fault.spoiled(data, headers)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in {**self.sim.extra_headers, **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        if fault is None or fault.mode not in ("cut_body", "reset_mid_body", "drip"):
            self.wfile.write(data)
        elif fault.mode == "drip":
            self._drip(data, fault.interval)
        else:
            self._break_off(data[: len(data) // 2], reset=fault.mode == "reset_mid_body")

    def _break_off(self, part: bytes, *, reset: bool) -> None:
        """Send `part` of the announced body, then close: with a FIN (the body is cut off) or,
        with SO_LINGER 0, an RST (the connection is reset mid-body)."""
        self.wfile.write(part)
        self.close_connection = True
        if reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()  # a socket only really closes (here: resets) once no file holds it
            self.connection.close()

    def _drip(self, data: bytes, interval: float) -> None:
        for offset in range(len(data)):
            if self.sim._stopping.wait(interval):  # the simulator stops
                self.close_connection = True
                return
            try:
                self.wfile.write(data[offset:offset + 1])
            except OSError:  # the client gave up
                self.close_connection = True
                return


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):  # a client that gave up on an answer: no news
            return
        super().handle_error(request, client_address)


_get_id = itemgetter("id")
_CONTROLS = (STATS_PATH, TOUCH_PATH, RATE_LIMIT_PATH)


def _edited(text: str) -> str:
    """`text` with its edit mark counted up: "Acme" -> "Acme (edit 1)" -> "Acme (edit 2)"."""
    mark = _EDIT_MARK.search(text)
    if mark is None:
        return f"{text} (edit 1)"
    return f"{text[:mark.start()]} (edit {int(mark.group(1)) + 1})"


def _released() -> None:
    return None


class SimulatorBase:
    """The vendor-neutral part of a PSA simulator (see the module docstring).

    Subclasses set `api_prefix` (the API paths below it are what the controls name),
    `server_version`, `name` (for thread names and messages), and write `_answer(request)`
    returning `(status, body, headers)` or raising `ApiError`, plus `error_body(error)`.
    """

    api_prefix = ""
    server_version = "PsaSimulator/1.0"
    name = "psa"
    page_parameter = "page"  # the query parameter that names a page (break_transfers(page=...))
    extra_headers: dict[str, str] = {}  # sent with every answer

    def __init__(self, dataset: Dataset, *, port: int = 0, rate_limit: tuple[int, float] | None = None,
                 tls: bool = False, verbose: bool = False) -> None:
        self.dataset = dataset
        self.verbose = verbose
        self.latency = 0.0  # seconds every API answer waits before it is computed
        self.lock = threading.RLock()  # held while reading the dataset
        self._cache: dict[str, tuple[list[dict], list[dict], list[int]]] = {}
        # Records served verbatim at the end of page 1 of their kind (a vendor bug to simulate:
        # no id, an id twice, wrong types...); counted, never filtered or sorted.
        self.malformed: dict[str, list[dict]] = {}
        # Raw JSON texts of records served after the malformed ones, and counted likewise.
        self.poison: dict[str, list[str]] = {}
        self._short_pages: list[_ShortPage] = []  # under self._gate.lock
        self._count_lies: dict[str, int] = {}  # API path -> what its count adds
        self._port = port
        self._tls = tls
        self._gate = _Gate(self._rate_limited, self._failure)
        self._gate.rate_limit = rate_limit
        self._transfer_faults: list[_TransferFault] = []  # under self._gate.lock
        self._stopping = threading.Event()
        self._count_lock = threading.Lock()
        self._requests = 0
        self._received = 0  # every request but the controls: the API's and sign-in, discovery...
        self.requests_by_path: dict[str, int] = {}
        self.request_times: list[float] = []  # time.monotonic() of each API request
        self._server: _Server | None = None
        self._connections: set[socket.socket] = set()  # open keep-alive connections
        self._thread: threading.Thread | None = None
        self._tls_dir: tempfile.TemporaryDirectory | None = None
        self.ca_file: str | None = None

    # -- vendor hooks ----------------------------------------------------------------------

    def _answer(self, request: _Handler) -> tuple[int, object, dict[str, str]]:
        raise NotImplementedError

    def error_body(self, error: ApiError) -> object:
        return {"code": error.code, "message": error.message}

    def _rate_limited(self, wait: int) -> ApiError:
        return ApiError(429, "TooManyRequests", "Request volume exceeded; retry after the time in Retry-After",
                        {"Retry-After": str(wait)})

    def _failure(self, status: int, retry_after: int | None) -> ApiError:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        return ApiError(status, STATUS_CODES.get(status, "ServerError"), f"Simulated failure (HTTP {status})", headers)

    def _bad_request(self, message: str) -> ApiError:
        return ApiError(400, "InvalidObject", message)

    def _occupy(self, request: _Handler) -> Callable[[], None]:
        """Take a slot for the whole request (send included); returns its release. A vendor
        with a concurrency limit raises ApiError here."""
        return _released

    # -- lifecycle -----------------------------------------------------------------------

    def start(self):
        if self._server is not None:
            return self
        self._stopping.clear()
        handler = type(f"{type(self).__name__}Handler", (_Handler,),
                       {"sim": self, "server_version": self.server_version})
        server = _Server(("127.0.0.1", self._port), handler)
        if self._tls:
            server.socket = self._tls_context().wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"{self.name}-simulator-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()  # ends drips in progress
        self._server.shutdown()
        self._server.server_close()
        with self._count_lock:  # a stopped server must not go on answering pooled connections
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None
        if self._tls_dir is not None:
            self._tls_dir.cleanup()
            self._tls_dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the simulator is not running")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """The site root, e.g. http://127.0.0.1:8101 (the API is under `api_prefix`)."""
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return self.base_url + self.api_prefix

    # -- misbehaviour and counters -------------------------------------------------------

    @property
    def rejected(self) -> int:
        """Requests the rate limit answered with 429."""
        return self._gate.rejected

    @property
    def rate_limit(self) -> tuple[int, float] | None:
        return self._gate.rate_limit

    @rate_limit.setter
    def rate_limit(self, value: tuple[int, float] | None) -> None:
        with self._gate.lock:
            self._gate.rate_limit = value
            self._gate.window.clear()

    def fail_next(self, n: int, status: int = 503, *, retry_after: int | None = None) -> None:
        """Answer the next `n` API requests with `status` (429 gets Retry-After: 1 by default)."""
        if status == 429 and retry_after is None:
            retry_after = 1
        with self._gate.lock:
            self._gate.failures.extend([(status, retry_after)] * n)

    def break_transfers(self, mode: str, *, path: str | None = None, page: int | None = None,
                        first: int | None = None, interval: float = 0.05) -> None:
        """Spoil the bodies of the API requests to `path` (below the API prefix; None: every
        API path), only those for `page` when given: the first `first` of them, or every one
        until `mend_transfers()` when `first` is None. Status and headers are sent as usual.

        Modes: `cut_body` (Content-Length N, half the bytes, then the connection closes),
        `reset_mid_body` (half the bytes, then an RST), `drip` (one byte every `interval`
        seconds), `bad_gzip` (announced as gzip, sent plain), `bad_utf8` (a byte that is not
        UTF-8), `bad_json` (the last byte missing). Faults added earlier are served first.
        """
        if mode not in TRANSFER_FAULTS:
            raise ValueError(f"unknown transfer fault {mode!r}; expected one of {', '.join(TRANSFER_FAULTS)}")
        if first is not None and first < 1:
            raise ValueError("first must be at least 1 (or None for every request)")
        with self._gate.lock:
            self._transfer_faults.append(_TransferFault(mode, path, page, first, interval))

    def mend_transfers(self) -> None:
        """No more broken transfers."""
        with self._gate.lock:
            self._transfer_faults.clear()

    def short_page(self, path: str, page: int, *, keep: int = 0, first: int | None = None) -> None:
        """Serve page `page` of `path` with only its first `keep` records (0: an empty page),
        paging hints unchanged: the first `first` requests of it, or every one until
        `mend_pages()` when `first` is None."""
        if page < 1 or keep < 0 or (first is not None and first < 1):
            raise ValueError("page and first must be at least 1, keep at least 0")
        with self._gate.lock:
            self._short_pages.append(_ShortPage(path, page, keep, first))

    def lie_about_count(self, path: str, by: int) -> None:
        """The count for `path` says `by` more records than `path` serves (fewer when negative)."""
        with self._gate.lock:
            self._count_lies[path] = by

    def mend_pages(self) -> None:
        """No more short pages or lying counts."""
        with self._gate.lock:
            self._short_pages.clear()
            self._count_lies.clear()

    def _count_lie(self, path: str) -> int:
        with self._gate.lock:
            return self._count_lies.get(path, 0)

    def _shortened(self, endpoint: str, page: int, chunk: list) -> list:
        with self._gate.lock:
            for fault in self._short_pages:
                if fault.remaining != 0 and (fault.path, fault.page) == (endpoint, page):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    return chunk[: fault.keep]
        return chunk

    def _endpoint(self, request_path: str) -> str | None:
        """The API path below the prefix of a request target, or None outside the API."""
        path = urlsplit(request_path).path.rstrip("/")
        if not path.startswith(self.api_prefix + "/"):
            return None
        return path[len(self.api_prefix):]

    def _transfer_fault(self, request_path: str) -> _TransferFault | None:
        """The fault that spoils this request's answer, if any (counted against its `first`)."""
        endpoint = self._endpoint(request_path)
        if endpoint is None:
            return None
        page = parse_qs(urlsplit(request_path).query).get(self.page_parameter, ["1"])[-1]
        with self._gate.lock:
            for fault in self._transfer_faults:
                if fault.applies(endpoint, page):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    return fault
        return None

    def _count(self, endpoint: str) -> None:
        """Count an API request, then pass the gates (rate limit, injected failures, latency)."""
        with self._count_lock:
            self._requests += 1
            self.requests_by_path[endpoint] = self.requests_by_path.get(endpoint, 0) + 1
            self.request_times.append(time.monotonic())
        self._gate.check()
        if self.latency:
            self._stopping.wait(self.latency)

    @property
    def requests(self) -> int:
        """API requests received (below the API prefix, whatever their answer)."""
        with self._count_lock:
            return self._requests

    def touch(self, share: float, seed: int = 1) -> dict[str, int]:
        """Change `share` (0..1) of the companies, contacts and configurations now, as a user of
        the PSA would: a visible field gets an ` (edit N)` mark and `_info.lastUpdated` becomes
        the current second (every vendor's change field follows it). Records picked at random
        by `seed`, deleted ones left alone; at least one of a kind when `share` > 0.
        Returns kind -> records changed."""
        if not 0 <= share <= 1:
            raise ValueError("share must be between 0 and 1")
        rng = random.Random(seed)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        changed = {}
        with self.lock:
            for kind, field_name in TOUCHED_FIELDS.items():
                live = [r for r in self.dataset.records(kind) if not r.get("deletedFlag")]
                count = min(len(live), math.ceil(len(live) * share - 1e-9))
                for record in rng.sample(live, count):
                    record[field_name] = _edited(record.get(field_name) or "")
                    record["_info"]["lastUpdated"] = now
                changed[kind] = count
        return changed

    def _control(self, method: str, path: str, query: dict[str, list[str]]) -> tuple[int, dict]:
        """The answer (status, JSON body) of an HTTP control."""
        expected = "GET" if path == STATS_PATH else "POST"
        if method != expected:
            return 405, {"error": f"{path} takes {expected}"}
        try:
            if path == STATS_PATH:
                with self._count_lock:
                    outside = self._received - self._requests
                return 200, {"requests": self.requests, "outside_api": outside, "rejected": self.rejected}
            if path == TOUCH_PATH:
                share = float(query.get("share", ["0.01"])[-1])
                return 200, {"changed": self.touch(share, int(query.get("seed", ["1"])[-1]))}
            max_requests = int(query.get("requests", ["0"])[-1])
            seconds = float(query.get("seconds", ["1"])[-1])
            if max_requests < 0 or seconds <= 0:
                raise ValueError("requests must be at least 0 and seconds positive")
            self.rate_limit = (max_requests, seconds) if max_requests else None
            return 200, {"rate_limit": self.rate_limit}
        except ValueError as error:
            return 400, {"error": str(error)}

    def reset_counts(self) -> None:
        with self._count_lock:
            self._requests = self._received = 0
            self.requests_by_path.clear()
            self.request_times.clear()

    # -- reading the dataset ---------------------------------------------------------------

    def _snapshot(self, kind: str) -> tuple[list[dict], list[int]]:
        """The records of `kind` sorted by id, and their ids.

        The dataset lists are live, so this is checked on every request, cheaply: comparing
        the list with the last copy is a C loop on object identity when nothing changed. (An
        in-place edit of a record's *id* is the one change it cannot see.)
        """
        with self.lock:
            current = self.dataset.records(kind)
            cached = self._cache.get(kind)
            if cached is not None and cached[0] == current:
                return cached[1], cached[2]
            copy = list(current)
        ids = list(map(_get_id, copy))
        if ids == sorted(ids):
            ordered = copy
        else:
            ordered = sorted(copy, key=_get_id)
            ids = list(map(_get_id, ordered))
        with self.lock:
            self._cache[kind] = (copy, ordered, ids)
        return ordered, ids

    @staticmethod
    def _after(ids: list[int], last_id: int) -> int:
        """The index of the first id greater than `last_id` in sorted `ids`."""
        return bisect_right(ids, last_id)

    def _int(self, query: dict[str, str], name: str, default: int, minimum: int) -> int:
        text = query.get(name, "").strip()
        if not text:
            return default
        try:
            value = int(text)
        except ValueError:
            raise self._bad_request(f"{name} must be a whole number") from None
        if value < minimum:
            raise self._bad_request(f"{name} must be at least {minimum}")
        return value

    # -- TLS -----------------------------------------------------------------------------

    def _tls_context(self) -> ssl.SSLContext:
        self._tls_dir = tempfile.TemporaryDirectory(prefix=f"{self.name}-sim-tls-")
        cert_file = os.path.join(self._tls_dir.name, "cert.pem")
        key_file = os.path.join(self._tls_dir.name, "key.pem")
        write_self_signed_certificate(cert_file, key_file, f"{self.name} simulator")
        self.ca_file = cert_file
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        return context


def write_self_signed_certificate(cert_file: str, key_file: str, common_name: str) -> None:
    """A one-day certificate for 127.0.0.1 / localhost (needs the `cryptography` package)."""
    import ipaddress
    from datetime import timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    with open(key_file, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    with open(cert_file, "wb") as handle:
        handle.write(certificate.public_bytes(serialization.Encoding.PEM))


# --- command line ------------------------------------------------------------------------


def serve_until_interrupted(simulator: SimulatorBase, describe: Callable[[SimulatorBase], str]) -> None:
    """Start `simulator`, print `describe(simulator)` (one line, no secret but public demo
    values), serve until Ctrl-C, stop."""
    simulator.start()
    print(describe(simulator), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()


def run_simulator(make: Callable[..., SimulatorBase], label: str, demo: dict[str, str], port: int,
                  dataset_name: str, seed: int, credentials: dict[str, str] | None,
                  credentials_source: str | None, tls: bool, where: str = "") -> None:
    """`run_forever` of a vendor module: `make(dataset, credentials=, port=, tls=)` serves the
    dataset until Ctrl-C, announced in one line (`where`: what to add after its URL)."""
    simulator = make(generate(dataset_name, seed), credentials=credentials, port=port, tls=tls)
    source = credentials_description(credentials, demo, credentials_source)
    serve_until_interrupted(simulator, lambda sim: (
        f"{label} simulator ({dataset_name} dataset, seed {seed}) at {sim.base_url}{where} "
        f"accepting {source}; Ctrl-C stops it"))


def credentials_description(credentials: dict[str, str] | None, demo: dict[str, str],
                            credentials_source: str | None) -> str:
    """Where the accepted credentials come from, for the start line."""
    if credentials is None:
        return "demo credentials " + ", ".join(f"{k}={v}" for k, v in demo.items())
    return credentials_source or "the credentials given"


def checked_credentials(credentials: dict[str, str] | None, demo: dict[str, str],
                        required: tuple[str, ...]) -> dict[str, str]:
    """Plain credential values (the demo ones for None), refusing missing keys."""
    credentials = dict(demo if credentials is None else credentials)
    missing = [key for key in required if not credentials.get(key)]
    if missing:
        raise ValueError(f"simulator credentials lack {', '.join(missing)}")
    return credentials
