"""A ConnectWise Manage (PSA) REST API simulator: a real HTTP server on 127.0.0.1.

It answers like the vendor for the endpoints the pipeline reads (see `ENDPOINTS`), under
`/v4_6_release/apis/3.0`, from a live `Dataset` (tests may edit the dataset's lists
between requests):

- auth: HTTP Basic `{company_id}+{public_key}` / `{private_key}` plus a `clientId` header;
  anything else is `401 {"code": "Unauthorized", ...}` (secrets are never echoed);
- paging: `page` (1-based) and `pageSize` (default 25, capped at `max_page_size`, 1000 like
  the vendor), records sorted by id unless `orderBy` says otherwise, RFC 5988 `Link`
  header with `first` / `prev` / `next` / `last`; with the request header
  `pagination-type: forward-only` it pages by `pageId` (keyset on id) and `Link` holds
  only `next`;
- `conditions` (`field op value` clauses joined by `and`; ops `= != < <= > >=`; values
  `[ISO datetime]`, numbers, `true`/`false`/`null`, `"text"`; `lastUpdated` and
  `dateEntered` read `_info`; nested fields with `/`, e.g. `company/id = 3`); anything else
  is `400 {"code": "InvalidObject", ...}`; `fields=id,name` projects top-level fields;
- `.../count` siblings answer `{"count": n}` for the same conditions;
- `GET /login/companyinfo/{companyId}` (no auth) tells the codebase, like the vendor;
- misbehaviour on demand: `fail_next(n, status)` and `rate_limit = (max_requests,
  window_seconds)` (beyond it: `429` with an integer `Retry-After`);
- broken transfers on demand: `break_transfers(mode, path=..., page=..., first=K)` spoils the
  bodies of the first K requests of a path (or of every one until `mend_transfers()`): a body
  cut off before its Content-Length, a connection reset (RST) mid-body, a body dripped one
  byte at a time, or a body that cannot be decoded (bad gzip, bad UTF-8, bad JSON);
- pages that do not add up, on demand: `short_page(path, page, keep=N, first=K)` serves a page
  with only its first N records (0: an empty page), `lie_about_count(path, by)` makes `/count`
  say `by` more (or fewer) than there are; `mend_pages()` ends both;
- bad records on demand: `malformed[kind]` (records served as given) and `poison[kind]` (raw
  JSON texts, for what `json.dumps` cannot write, e.g. `nested_record(id, 990)`), both at the
  end of page 1 and counted.

With `tls=True` it serves HTTPS with a throw-away self-signed certificate for 127.0.0.1
(`ca_file` is its path): that is how the vendor's own client, pyconnectwise, which
hardcodes `https://`, can read it (give it `REQUESTS_CA_BUNDLE=sim.ca_file`).
"""

from __future__ import annotations

import base64
import hmac
import json
import math
import os
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
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from hg_pipeline.simulators.datasets import Dataset, generate

API_PREFIX = "/v4_6_release/apis/3.0"
CODEBASE = "v4_6_release/"
VERSION_CODE = "v2025.1"
DEFAULT_PAGE_SIZE = 25

# Accepted when the simulator is started without credentials (`hg-pipeline simulate
# connectwise` without --credential): company id "bluepeak", public key
# "demo-public-key", private key "demo-private-key", client id
# "00000000-0000-4000-8000-00000000c0de". Demo values only; they protect nothing.
DEMO_CREDENTIALS: dict[str, str] = {
    "company_id": "bluepeak",
    "public_key": "demo-public-key",
    "private_key": "demo-private-key",
    "client_id": "00000000-0000-4000-8000-00000000c0de",
}
CREDENTIAL_KEYS = ("company_id", "public_key", "private_key", "client_id")

# API path (below API_PREFIX) -> Dataset list.
ENDPOINTS: dict[str, str] = {
    "/company/companies": "companies",
    "/company/companies/types": "company_types",
    "/company/contacts": "contacts",
    "/company/contacts/types": "contact_types",
    "/procurement/categories": "categories",
    "/procurement/subcategories": "subcategories",
    "/procurement/catalog": "catalog",
    "/system/members": "members",
    "/company/configurations": "configurations",
    "/company/configurations/types": "configuration_types",
}


class ApiError(Exception):
    """An error answer: HTTP status plus the ConnectWise error body."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict:
        return {"code": self.code, "message": self.message, "errors": None}


# --- conditions ------------------------------------------------------------------------

_get_id = itemgetter("id")

_CLAUSE = re.compile(
    r"""\s*(?P<field>[A-Za-z_][A-Za-z0-9_]*(?:/[A-Za-z_][A-Za-z0-9_]*)*)\s*
        (?P<op>>=|<=|!=|=|<|>)\s*
        (?P<value>\[[^\]]*\]|"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?|true|false|null)\s*$""",
    re.VERBOSE | re.IGNORECASE,
)
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)
_INFO_FIELDS = {"lastupdated": "lastUpdated", "dateentered": "dateEntered"}


def _cw_datetime(text: str) -> str:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "InvalidObject", f"conditions: {text!r} is not a valid date") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _field_getter(path: str):
    parts = path.split("/")
    if len(parts) == 1 and parts[0].lower() in _INFO_FIELDS:
        key = _INFO_FIELDS[parts[0].lower()]
        return lambda record: (record.get("_info") or {}).get(key)

    def get(record):
        value = record
        for part in parts:
            if not isinstance(value, dict):
                return None
            value = value.get(part)
        return value

    return get


_OPS = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a is not None and b is not None and a < b,
    "<=": lambda a, b: a is not None and b is not None and a <= b,
    ">": lambda a, b: a is not None and b is not None and a > b,
    ">=": lambda a, b: a is not None and b is not None and a >= b,
}


def parse_conditions(text: str):
    """A predicate for a `conditions` string, or an ApiError(400) for what it can't read."""
    clauses = []
    for part in _AND.split(text.strip()):
        match = _CLAUSE.match(part)
        if not match:
            raise ApiError(400, "InvalidObject", f"conditions: cannot parse {part.strip()!r}")
        raw = match["value"]
        field = match["field"]
        if raw.startswith("["):
            value = _cw_datetime(raw[1:-1])
            getter = _field_getter(field)

            def get(record, getter=getter):  # stored timestamps may be in any ISO form
                stored = getter(record)
                return _cw_datetime(stored) if isinstance(stored, str) and not stored.endswith("Z") else stored
        else:
            if raw.startswith('"'):
                value = raw[1:-1].replace('\\"', '"')
            elif raw.lower() in ("true", "false"):
                value = raw.lower() == "true"
            elif raw.lower() == "null":
                value = None
            else:
                value = float(raw) if "." in raw else int(raw)
            get = _field_getter(field)
        op = _OPS[match["op"]]
        clauses.append((get, op, value))

    def matches(record: dict) -> bool:
        for get, op, value in clauses:
            try:
                if not op(get(record), value):
                    return False
            except TypeError:  # e.g. comparing a string with a number
                return False
        return True

    return matches


# --- rate limiting and failures ----------------------------------------------------------


class _Gate:
    """Injected failures and the sliding-window rate limit, shared by all handler threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.failures: deque[tuple[int, int | None]] = deque()
        self.rate_limit: tuple[int, float] | None = None
        self.window: deque[float] = deque()

    def check(self) -> None:
        with self.lock:
            if self.rate_limit is not None:
                max_requests, window_seconds = self.rate_limit
                now = time.monotonic()
                while self.window and self.window[0] <= now - window_seconds:
                    self.window.popleft()
                if len(self.window) >= max_requests:
                    wait = max(1, math.ceil(self.window[0] + window_seconds - now))
                    raise ApiError(429, "TooManyRequests",
                                   "Request volume exceeded; retry after the time in Retry-After",
                                   {"Retry-After": str(wait)})
                self.window.append(now)
            if self.failures:
                status, retry_after = self.failures.popleft()
                headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
                raise ApiError(status, _STATUS_CODES.get(status, "ServerError"),
                               f"Simulated failure (HTTP {status})", headers)


@dataclass
class _ShortPage:
    path: str  # an API path below API_PREFIX
    page: int
    keep: int  # records of the page served
    remaining: int | None  # answers still to shorten; None: every one


class _RawJson(str):
    """A body already written as JSON text (sent as is)."""


def nested_record(record_id: int, depth: int, **fields) -> str:
    """The JSON text of a record with `id`, `fields` and a value nested `depth` levels deep
    (its own object included), which `json.dumps` of a Python object could not write."""
    head = json.dumps({"id": record_id, **fields}, separators=(",", ":"))[:-1]
    inner = max(depth - 1, 0)
    return f'{head},"nested":{"[" * inner}{"]" * inner}}}'


# Transfer faults: how the body of an answer is spoiled (see `ConnectWiseSimulator.break_transfers`).
TRANSFER_FAULTS = ("cut_body", "reset_mid_body", "drip", "bad_gzip", "bad_utf8", "bad_json")


@dataclass
class _TransferFault:
    mode: str
    path: str | None  # an API path below API_PREFIX; None: every API path
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


_STATUS_CODES = {
    429: "TooManyRequests", 500: "UnexpectedServerError", 502: "BadGateway",
    503: "ServiceUnavailable", 504: "GatewayTimeout", 401: "Unauthorized", 403: "Forbidden",
}


# --- the server --------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so clients can pool connections
    server_version = "ConnectWiseSimulator/1.0"
    sim: "ConnectWiseSimulator"  # set on the subclass made per simulator

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

    def do_GET(self) -> None:  # noqa: N802
        fault = self.sim._transfer_fault(self.path)
        try:
            status, body, headers = self.sim._answer(self)
        except ApiError as error:
            status, body, headers = error.status, error.body(), error.headers
        except Exception as error:  # noqa: BLE001 - a simulator bug must still answer JSON
            status, body, headers = 500, {"code": "UnexpectedServerError", "message": type(error).__name__}, {}
        self._send(status, body, headers, fault)

    def _reject(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self._send(405, {"code": "MethodNotAllowed", "message": "This simulator is read-only"}, {"Allow": "GET"})

    do_POST = do_PUT = do_PATCH = do_DELETE = _reject  # noqa: N815

    def _send(self, status: int, body, headers: dict[str, str], fault: _TransferFault | None = None) -> None:
        data = body.encode() if isinstance(body, _RawJson) else json.dumps(body, separators=(",", ":")).encode()
        if fault is not None:
            data, headers = fault.spoiled(data, headers)
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("api-current-version", VERSION_CODE.lstrip("v"))
        for name, value in headers.items():
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


class ConnectWiseSimulator:
    """A ConnectWise Manage API on 127.0.0.1 serving `dataset` (see the module docstring).

    `credentials` holds plain values for `company_id`, `public_key`, `private_key` and
    `client_id`; None means `DEMO_CREDENTIALS`. Use as a context manager or call
    `start()` / `stop()`.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        credentials: dict[str, str] | None = None,
        port: int = 0,
        max_page_size: int = 1000,
        rate_limit: tuple[int, float] | None = None,
        tls: bool = False,
        verbose: bool = False,
    ) -> None:
        credentials = dict(DEMO_CREDENTIALS if credentials is None else credentials)
        missing = [key for key in CREDENTIAL_KEYS if not credentials.get(key)]
        if missing:
            raise ValueError(f"simulator credentials lack {', '.join(missing)}")
        self.dataset = dataset
        self.max_page_size = max_page_size
        self.verbose = verbose
        self.lock = threading.RLock()  # held while reading the dataset
        self._cache: dict[str, tuple[list[dict], list[dict], list[int]]] = {}
        # Records served verbatim at the end of page 1 of their kind (a vendor bug to simulate:
        # no id, an id twice, wrong types...); counted by `/count`, never filtered or sorted.
        self.malformed: dict[str, list[dict]] = {}
        # Raw JSON texts of records served after the malformed ones, and counted likewise.
        self.poison: dict[str, list[str]] = {}
        self._short_pages: list[_ShortPage] = []  # under self._gate.lock
        self._count_lies: dict[str, int] = {}  # API path -> what /count adds
        self._credentials = credentials
        self._expected_auth = "Basic " + base64.b64encode(
            f"{credentials['company_id']}+{credentials['public_key']}:{credentials['private_key']}".encode()
        ).decode("ascii")
        self._port = port
        self._tls = tls
        self._gate = _Gate()
        self._gate.rate_limit = rate_limit
        self._transfer_faults: list[_TransferFault] = []  # under self._gate.lock
        self._stopping = threading.Event()
        self._count_lock = threading.Lock()
        self._requests = 0
        self.requests_by_path: dict[str, int] = {}
        self.request_times: list[float] = []  # time.monotonic() of each API request
        self._server: _Server | None = None
        self._connections: set[socket.socket] = set()  # open keep-alive connections
        self._thread: threading.Thread | None = None
        self._tls_dir: tempfile.TemporaryDirectory | None = None
        self.ca_file: str | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> "ConnectWiseSimulator":
        if self._server is not None:
            return self
        self._stopping.clear()
        handler = type("ConnectWiseHandler", (_Handler,), {"sim": self})
        server = _Server(("127.0.0.1", self._port), handler)
        if self._tls:
            server.socket = self._tls_context().wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"cw-simulator-{self.port}", daemon=True)
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

    def __enter__(self) -> "ConnectWiseSimulator":
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
        """The site root, e.g. http://127.0.0.1:8101 (the API is under API_PREFIX)."""
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return self.base_url + API_PREFIX

    # -- misbehaviour and counters -------------------------------------------------------

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
        """Spoil the bodies of the API requests to `path` (below API_PREFIX, e.g.
        "/company/companies"; None: every API path), only those for `page` when given: the
        first `first` of them, or every one until `mend_transfers()` when `first` is None.
        Status and headers are sent as usual.

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
        """Serve page `page` of `path` (below API_PREFIX, e.g. "/company/configurations") with
        only its first `keep` records (0: an empty page), Link headers unchanged: the first
        `first` requests of it, or every one until `mend_pages()` when `first` is None."""
        if page < 1 or keep < 0 or (first is not None and first < 1):
            raise ValueError("page and first must be at least 1, keep at least 0")
        with self._gate.lock:
            self._short_pages.append(_ShortPage(path, page, keep, first))

    def lie_about_count(self, path: str, by: int) -> None:
        """`path/count` answers `by` more records than `path` serves (fewer when negative)."""
        with self._gate.lock:
            self._count_lies[path] = by

    def mend_pages(self) -> None:
        """No more short pages or lying counts."""
        with self._gate.lock:
            self._short_pages.clear()
            self._count_lies.clear()

    def _shortened(self, endpoint: str, page: int, chunk: list) -> list:
        with self._gate.lock:
            for fault in self._short_pages:
                if fault.remaining != 0 and (fault.path, fault.page) == (endpoint, page):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    return chunk[: fault.keep]
        return chunk

    def _transfer_fault(self, request_path: str) -> _TransferFault | None:
        """The fault that spoils this request's answer, if any (counted against its `first`)."""
        parts = urlsplit(request_path)
        path = parts.path.rstrip("/")
        if not path.startswith(API_PREFIX + "/"):
            return None
        endpoint = path[len(API_PREFIX):]
        page = parse_qs(parts.query).get("page", ["1"])[-1]
        with self._gate.lock:
            for fault in self._transfer_faults:
                if fault.applies(endpoint, page):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    return fault
        return None

    @property
    def requests(self) -> int:
        """API requests received (under API_PREFIX, whatever their answer)."""
        with self._count_lock:
            return self._requests

    def reset_counts(self) -> None:
        with self._count_lock:
            self._requests = 0
            self.requests_by_path.clear()
            self.request_times.clear()

    # -- answering -----------------------------------------------------------------------

    def _answer(self, request: _Handler) -> tuple[int, object, dict[str, str]]:
        parts = urlsplit(request.path)
        path = parts.path.rstrip("/") or "/"
        if path.startswith("/login/companyinfo/"):
            return 200, self._company_info(path.rsplit("/", 1)[1], request), {}
        if not path.startswith(API_PREFIX + "/"):
            raise ApiError(404, "NotFound", f"{path} is not an API path")
        endpoint = path[len(API_PREFIX):]
        with self._count_lock:
            self._requests += 1
            self.requests_by_path[endpoint] = self.requests_by_path.get(endpoint, 0) + 1
            self.request_times.append(time.monotonic())
        self._gate.check()
        self._authenticate(request)
        counting = endpoint.endswith("/count")
        kind = ENDPOINTS.get(endpoint[: -len("/count")] if counting else endpoint)
        if kind is None:
            raise ApiError(404, "NotFound", f"{endpoint} is not a known endpoint")
        try:
            query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        except ValueError:
            raise ApiError(400, "InvalidObject", "query string cannot be parsed") from None
        return self._list(kind, endpoint, query, request, counting)

    def _authenticate(self, request: _Handler) -> None:
        given = request.headers.get("Authorization", "")
        client_id = request.headers.get("clientId", "")
        if not hmac.compare_digest(given.encode(), self._expected_auth.encode()):
            raise ApiError(401, "Unauthorized", "Authentication failed: invalid or missing API keys")
        if not hmac.compare_digest(client_id.encode(), self._credentials["client_id"].encode()):
            raise ApiError(401, "Unauthorized", "Authentication failed: a valid clientId header is required")

    def _company_info(self, company_id: str, request: _Handler) -> dict:
        host = request.headers.get("Host") or f"127.0.0.1:{self.port}"
        return {
            "CompanyName": company_id,
            "Codebase": CODEBASE,
            "VersionCode": VERSION_CODE,
            "VersionNumber": "v4.6.2025.1",
            "CompanyID": company_id,
            "IsCloud": False,
            "SiteUrl": host,
        }

    def _list(self, kind: str, endpoint: str, query: dict[str, str], request: _Handler, counting: bool):
        conditions = query.get("conditions", "").strip()
        predicate = parse_conditions(conditions) if conditions else None
        order = self._order(query.get("orderBy", "").strip())
        forward_only = request.headers.get("pagination-type", "").lower() == "forward-only"
        if forward_only and order is not None and order != ("id", False):
            raise ApiError(400, "InvalidObject", "orderBy is not allowed with forward-only pagination")
        records, ids = self._snapshot(kind)
        if predicate is not None:
            records = [r for r in records if predicate(r)]
            ids = None
        malformed = self.malformed.get(kind, [])
        poison = self.poison.get(kind, [])
        if counting:
            with self._gate.lock:
                lie = self._count_lies.get(endpoint[: -len("/count")], 0)
            return 200, {"count": len(records) + len(malformed) + len(poison) + lie}, {}
        if order is not None and order != ("id", False):
            records, ids = self._sorted(records, order), None
        page_size = self._int(query, "pageSize", DEFAULT_PAGE_SIZE, minimum=1)
        page_size = min(page_size, self.max_page_size)
        keep = {k: v for k, v in query.items() if k not in ("page", "pageSize", "pageId")}
        if forward_only:
            page_id = self._int(query, "pageId", 0, minimum=0)
            start = bisect_right(ids if ids is not None else [r["id"] for r in records], page_id)
            chunk = records[start:start + page_size]
            links = {}
            if start + page_size < len(records):
                links["next"] = {"pageSize": page_size, "pageId": chunk[-1]["id"]}
        else:
            page = self._int(query, "page", 1, minimum=1)
            last_page = max(1, math.ceil(len(records) / page_size))
            chunk = records[(page - 1) * page_size: page * page_size]
            if page == 1 and malformed:
                chunk = chunk + malformed
            chunk = self._shortened(endpoint, page, chunk)
            links = {}
            if page > 1:
                links["first"] = {"pageSize": page_size, "page": 1}
                links["prev"] = {"pageSize": page_size, "page": min(page - 1, last_page)}
            if page < last_page:
                links["next"] = {"pageSize": page_size, "page": page + 1}
                links["last"] = {"pageSize": page_size, "page": last_page}
        fields = query.get("fields", "").strip()
        if fields:
            chunk = self._project(chunk, fields)
        if poison and not forward_only and page == 1:
            chunk = _RawJson("[" + ",".join([json.dumps(r, separators=(",", ":")) for r in chunk] + poison) + "]")
        host = request.headers.get("Host") or f"127.0.0.1:{self.port}"
        site = f"{'https' if self._tls else 'http'}://{host}{API_PREFIX}{endpoint}"
        link = ", ".join(
            # page / pageId last, as the vendor does (clients read `page=N>` with a regex)
            f'<{site}/?{urlencode({**keep, **params}, quote_via=quote)}>; rel="{rel}"'
            for rel, params in links.items()
        )
        return 200, chunk, {"Link": link}

    @staticmethod
    def _int(query: dict[str, str], name: str, default: int, minimum: int) -> int:
        text = query.get(name, "").strip()
        if not text:
            return default
        try:
            value = int(text)
        except ValueError:
            raise ApiError(400, "InvalidObject", f"{name} must be a whole number") from None
        if value < minimum:
            raise ApiError(400, "InvalidObject", f"{name} must be at least {minimum}")
        return value

    @staticmethod
    def _order(text: str) -> tuple[str, bool] | None:
        if not text:
            return None
        match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_/]*)(?:\s+(asc|desc))?", text, re.IGNORECASE)
        if not match:
            raise ApiError(400, "InvalidObject", f"orderBy: cannot parse {text!r}")
        return match[1], (match[2] or "asc").lower() == "desc"

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
    def _sorted(records: list[dict], order: tuple[str, bool]) -> list[dict]:
        field, descending = order
        get = _field_getter(field)

        def key(record):
            value = get(record)
            return (value is None, value if isinstance(value, (int, float, str)) else str(value), record["id"])

        return sorted(records, key=key, reverse=descending)

    @staticmethod
    def _project(records: list[dict], fields: str) -> list[dict]:
        names = [name.strip() for name in fields.split(",") if name.strip()]
        if not names:
            return records
        if names == ["id"]:
            return [{"id": r["id"]} if "id" in r else {} for r in records]
        return [{name: r[name] for name in names if name in r} for r in records]

    # -- TLS -----------------------------------------------------------------------------

    def _tls_context(self) -> ssl.SSLContext:
        self._tls_dir = tempfile.TemporaryDirectory(prefix="cw-sim-tls-")
        cert_file = os.path.join(self._tls_dir.name, "cert.pem")
        key_file = os.path.join(self._tls_dir.name, "key.pem")
        _write_self_signed_certificate(cert_file, key_file)
        self.ca_file = cert_file
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        return context


def _write_self_signed_certificate(cert_file: str, key_file: str) -> None:
    """A one-day certificate for 127.0.0.1 / localhost (needs the `cryptography` package)."""
    import ipaddress
    from datetime import timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ConnectWise simulator")])
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


def run_forever(port: int, dataset_name: str = "small", seed: int = 1,
                credentials: dict[str, str] | None = None, *, credentials_source: str | None = None,
                tls: bool = False) -> None:
    """Serve until Ctrl-C. `credentials`: resolved plain values, or None for the demo ones.

    Prints one line with the URL and where the accepted credentials come from (never the
    secret values themselves, except the public demo ones).
    """
    simulator = ConnectWiseSimulator(generate(dataset_name, seed), credentials=credentials, port=port, tls=tls)
    simulator.start()
    if credentials is None:
        source = "demo credentials " + ", ".join(f"{k}={v}" for k, v in DEMO_CREDENTIALS.items())
    else:
        source = credentials_source or "the credentials given"
    print(f"ConnectWise simulator ({dataset_name} dataset, seed {seed}) at {simulator.base_url} "
          f"accepting {source}; Ctrl-C stops it", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()


def serve(source: str, port: int, dataset: str = "small", seed: int = 1,
          credentials: dict[str, str] | None = None) -> None:
    """Entry point for `hg-pipeline simulate SOURCE ...`; only `connectwise` exists so far."""
    if source != "connectwise":
        raise ValueError(f"no simulator for source {source} yet")
    run_forever(port, dataset, seed, credentials)


def main(argv: list[str] | None = None) -> int:
    """`python -m hg_pipeline.simulators.connectwise --port P [--dataset D] [--seed N]
    [--credential KEY=env:VAR ...]`"""
    import argparse

    from hg_pipeline.connectors.credentials import CredentialError, parse_credential_args, resolve_credentials

    parser = argparse.ArgumentParser(prog="connectwise-simulator")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dataset", choices=("small", "large"), default="small")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--credential", action="append", default=[], metavar="KEY=env:VAR")
    args = parser.parse_args(argv)
    credentials = None
    source = None
    if args.credential:
        try:
            refs = parse_credential_args(args.credential)
            credentials = resolve_credentials(refs, CREDENTIAL_KEYS)
        except CredentialError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        source = "credentials from " + ", ".join(f"{k}={v}" for k, v in sorted(refs.items()))
    run_forever(args.port, args.dataset, args.seed, credentials, credentials_source=source)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
