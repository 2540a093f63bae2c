"""The HTTP core every PSA connector shares: pooled session, retries, deadlines, rate limit, errors.

Nothing here knows a vendor. Errors carry the status and the URL path (no query, no
headers) and never a credential: values passed as `secrets` are scrubbed from messages.
Credentials go to the tenant's own origin only (see `PsaHttp` and `origin.py`).
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import random
import socket
import threading
from collections import deque
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from http.client import IncompleteRead, RemoteDisconnected  # urllib3's own IncompleteRead derives from it
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import DecodeError, HTTPError, NameResolutionError, ReadTimeoutError

from hg_pipeline.connectors.origin import address_problem, check_base_url, origin_of, private_allowed, shown_origin

from hg_pipeline.connectors.auth import BasicAuth, PsaAuth
from hg_pipeline.secrets import register_headers, scrub as scrub_secrets

log = logging.getLogger("hg_pipeline.connectors")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
DEFAULT_TIMEOUT = 20.0  # seconds to connect, and the longest silence while an answer comes
DEFAULT_DEADLINE = 45.0  # seconds one attempt may take, from connect to its body's last byte
DEFAULT_ENTITY_DEADLINE = 900.0  # no retry starts after this many seconds of one entity's reading
UNANSWERED_ATTEMPTS = 3  # attempts without an answer (connection, timeouts, deadline) per request
UNREACHABLE_TTL = 300.0  # seconds an origin given up as unreachable is not asked again
ERROR_BODY_CAP = 64 * 1024  # bytes read of an error body (4xx/5xx, HTML, not JSON)
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_JSON_STARTS = b'[{"-0123456789tfn'  # the first byte of a JSON text (after blanks and a BOM)
_CHUNK = 64 * 1024


class PsaError(Exception):
    """A PSA request failed. `status` is the HTTP status (None without an answer);
    `url_path` the path asked for (never the query string)."""

    def __init__(self, message: str, *, status: int | None = None, url_path: str = "") -> None:
        super().__init__(" ".join(str(message).split()))  # one line
        self.status = status
        self.url_path = url_path


class PsaAuthError(PsaError):
    """The PSA refused the credentials (401) or the permission (403)."""

    sent_authorization: str | None = None  # the Authorization header refused (never in a message)


class PsaUnreachable(PsaError):
    """No answer from the PSA (connection refused, DNS, timeouts, the deadline) after the retries."""


class _Retry(Exception):
    """One attempt failed in a way another attempt may cure: `reason` goes into the final
    message, `unreachable` picks PsaUnreachable over PsaError, `invalid` marks a body that is
    not JSON (twice in a row ends the request), `details` follows the attempts."""

    def __init__(self, reason: str, *, unreachable: bool = False, invalid: bool = False, status: int | None = None,
                 retry_after: float | None = None, details: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.unreachable = unreachable
        self.invalid = invalid
        self.status = status
        self.retry_after = retry_after
        self.details = details


@dataclass(frozen=True)
class _Request:
    """What one request sends (again on every attempt)."""

    method: str
    url_path: str  # scrubbed, for messages
    params: Mapping[str, object] | None
    json: object
    data: Mapping[str, str] | None
    headers: Mapping[str, str] | None
    authenticated: bool

    def redirected(self, status: int) -> "_Request":
        """What follows a redirect: 307/308 keep method and body; the others ask with GET, no body."""
        if status in (307, 308):
            return replace(self, params=None)
        return replace(self, method="GET", params=None, json=None, data=None)


class Abandon:
    """Lets one thread give up on the requests other threads make with it (`abandon()`): they
    stop before their next attempt or body chunk, and a body read already waiting ends at once.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._bodies: set = set()  # urllib3 responses being read

    def __call__(self) -> None:
        with self._lock:
            self._event.set()
            bodies = list(self._bodies)
        for raw in bodies:
            try:
                raw.shutdown()  # a blocked read of this body returns now
            except (OSError, RuntimeError, ValueError):  # already read, released or closed
                pass

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        return self._event.wait(seconds)

    @contextmanager
    def reading(self, raw) -> Iterator[None]:
        with self._lock:
            self._bodies.add(raw)
        try:
            yield
        finally:
            with self._lock:
                self._bodies.discard(raw)


class RateLimiter:
    """The request budget of one PSA instance: at most `per_second` request starts per second;
    None = no limit. `shared_limiter` gives every connector (every tenant) of one PSA instance in
    this process the same one, so together they stay within the vendor's limit.

    It mirrors the vendors' rolling windows: a request starts only when fewer than N requests
    started in the last W seconds (W = 1 s, or 1/rate below one request a second; N = rate x W),
    plus a margin for network jitter. So time spent between requests (staging a page, the next
    entity's setup) is not lost, and no window ever holds one request too many.
    A slot counts from the moment its request is written (`sent`, called by the connection), not
    from when it was granted: a thread that waits for the interpreter lock between the two (pages
    being decoded meanwhile) would otherwise reach the PSA late and crowd the next slot into the
    same window. A request whose slot follows one that went out late waits for it (`acquire`
    checks again after its sleep, and also heeds a 429 that came meanwhile).
    After a 429 `back_off(seconds)` holds every request of the instance for the Retry-After,
    then lets them go on at 3/4 of the former rate (never below `floor`).
    Thread-safe: `acquire()` reserves the next slot under a lock and sleeps outside it.
    """

    MARGIN = 0.02  # seconds added to every window: requests arrive with network jitter

    def __init__(self, per_second: float | None, *, floor: float = 0.05) -> None:
        self.floor = floor
        self._lock = threading.Lock()
        self._hold_until = 0.0
        self._slots: deque[list[float]] = deque()  # [start] of the last requests, oldest first
        self._mine = threading.local()  # the slot of the request this thread is making
        self.configured = per_second  # what the connectors were told; a 429 lowers `per_second`
        self._set(per_second)

    def _set(self, per_second: float | None) -> None:
        if per_second is not None and per_second <= 0:
            raise ValueError("requests per second must be positive")
        self.per_second = per_second
        self.window = max(1.0, 1.0 / per_second) if per_second else 0.0
        self.capacity = max(1, int(per_second * self.window + 1e-9)) if per_second else 0

    def acquire(self) -> float:
        """Block until a request may start; returns the seconds waited."""
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._hold_until)
            before = None  # the slot this one must keep a window away from
            if self.capacity:
                while len(self._slots) > self.capacity:
                    self._slots.popleft()
                if len(self._slots) == self.capacity:
                    before = self._slots[0]
                    slot = max(slot, before[0] + self.window + self.MARGIN)
                mine = [slot]
                self._slots.append(mine)
                self._mine.slot = mine
        while True:
            wait = slot - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            with self._lock:
                due = self._hold_until if before is None else max(self._hold_until,
                                                                  before[0] + self.window + self.MARGIN)
                if due <= slot:
                    return max(0.0, slot - now)
                slot = due  # the request before went out late, or a 429 came meanwhile
                if self.capacity:
                    mine[0] = slot

    def sent(self) -> None:
        """The request of this thread's last slot is being written now: the PSA counts it from here."""
        mine = getattr(self._mine, "slot", None)
        if mine is not None:
            with self._lock:
                mine[0] = max(mine[0], time.monotonic())

    def back_off(self, seconds: float) -> None:
        """The PSA said 429: nobody starts before `seconds` from now, then at a lower rate."""
        with self._lock:
            self._hold_until = max(self._hold_until, time.monotonic() + max(0.0, seconds))
            if self.per_second:
                self._set(max(self.floor, self.per_second * 0.75))

    def configure(self, per_second: float | None) -> None:
        """A connector was built with `per_second`: a new setting replaces the rate; the same one
        keeps whatever a 429 taught."""
        with self._lock:
            if per_second != self.configured:
                self.configured = per_second
                self._set(per_second)


_limiters: dict[str, RateLimiter] = {}
_limiters_lock = threading.Lock()


def shared_limiter(base_url: str, per_second: float | None) -> RateLimiter:
    """The one RateLimiter of the PSA instance at `base_url` (scheme, host, port) in this process.
    The connectors of one instance are configured alike; the last one built sets the rate."""
    parts = urlsplit(base_url)
    key = f"{parts.scheme}://{parts.netloc}".lower()
    with _limiters_lock:
        limiter = _limiters.setdefault(key, RateLimiter(per_second))
    limiter.configure(per_second)
    return limiter


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    now = time.time() if now is None else now
    return max(0.0, moment.timestamp() - now)


class Reachability:
    """What the requests of one sync learned about its PSA: an origin that gave no answer after
    all its attempts is not asked again for `ttl` seconds. Shared by the connectors of one run
    (PsaResource), so the entities after the first one that found the PSA silent fail at once
    instead of each waiting out the same attempts."""

    def __init__(self, ttl: float = UNREACHABLE_TTL) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._down: dict[str, tuple[float, str]] = {}  # origin -> (when, the give-up message)

    def mark_down(self, origin: str, reason: str) -> None:
        with self._lock:
            self._down[origin] = (time.monotonic(), reason)

    def down(self, origin: str) -> str | None:
        """The give-up message when `origin` was found unreachable less than `ttl` seconds ago."""
        with self._lock:
            found = self._down.get(origin)
            if found is not None and time.monotonic() - found[0] > self.ttl:
                del self._down[origin]
                found = None
        return None if found is None else found[1]


class _RefusedPeer(Exception):
    """The host name of the PSA led to an address the origin policy refuses."""


_current = threading.local()  # the _Watch of the attempt this thread is making, if any


class _Watch:
    """Ends an attempt at its deadline in whatever phase it is (connect, TLS, request, headers):
    the connection registered by the hooks below has its socket shut down, so a server that
    drips its headers cannot hold a request past the deadline. (The body has its own bounds.)"""

    def __init__(self, seconds: float, on_send: Callable[[], None] | None = None) -> None:
        self.on_send = on_send  # told when the request is written (the rate limiter's `sent`)
        self.expired = False
        self.over = False  # the attempt ended first: nothing to expire
        self._lock = threading.Lock()
        self._connection = None
        self._seconds = max(seconds, 0.0)

    def __enter__(self) -> "_Watch":
        _current.watch = self
        _watchdog.add(self, self._seconds)
        return self

    def __exit__(self, *exc_info) -> None:
        with self._lock:
            self.over = True
            self._connection = None  # the watchdog keeps this watch until its deadline
        _current.watch = None

    def watch(self, connection) -> None:
        with self._lock:
            self._connection = connection
            if self.expired:
                _shut(connection)

    def expire(self) -> None:
        with self._lock:
            if self.over:
                return
            self.expired = True
            if self._connection is not None:
                _shut(self._connection)


class _Watchdog:
    """One thread for every _Watch of the process, waking at the earliest deadline. A timer
    thread per attempt cost a thread start per request, which waits for the interpreter lock
    while other pages are decoded: seconds over the 1,700 requests of a large full sync."""

    def __init__(self) -> None:
        self._wake = threading.Condition()
        self._due: list[tuple[float, int, _Watch]] = []  # a heap; ended watches leave it at their deadline
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, watch: _Watch, seconds: float) -> None:
        with self._wake:
            heapq.heappush(self._due, (time.monotonic() + seconds, next(self._order), watch))
            if self._thread is None or not self._thread.is_alive():  # first use, or a forked child
                self._thread = threading.Thread(target=self._run, name="psa-watchdog", daemon=True)
                self._thread.start()
            elif self._due[0][2] is watch:
                self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._due or self._due[0][0] > time.monotonic():
                    self._wake.wait(self._due[0][0] - time.monotonic() if self._due else None)
                _, _, watch = heapq.heappop(self._due)
            watch.expire()


_watchdog = _Watchdog()


def _shut(connection) -> None:
    sock = getattr(connection, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)  # a blocked read or handshake returns now
        except OSError:
            pass


def _watched(connection, sending: bool = False) -> None:
    watch = getattr(_current, "watch", None)
    if watch is not None:
        watch.watch(connection)
        if sending and watch.on_send is not None:
            watch.on_send()


def _checked_connection(base: type, peer_check: Callable[[str], str | None]) -> type:
    """`base` (urllib3's HTTP(S)Connection) that registers with the attempt's _Watch and refuses
    a peer address the policy forbids right after connecting, before a byte of the request
    (credentials included) is sent. Checking the address actually connected to, not a lookup
    made beforehand, leaves no window for a DNS answer that changes in between."""

    class CheckedConnection(base):
        def connect(self) -> None:
            _watched(self)
            super().connect()
            if self.proxy is None:  # through a proxy the peer is the proxy: nothing to judge here
                address = self.sock.getpeername()[0]
                problem = peer_check(address)
                if problem is not None:
                    self.close()
                    raise _RefusedPeer(f"{self.host} is at {address}, {problem}")

        def request(self, *args, **kwargs) -> None:
            _watched(self, sending=True)  # a pooled connection is reused without connect()
            return super().request(*args, **kwargs)

    CheckedConnection.__name__ = f"Checked{base.__name__}"
    return CheckedConnection


class _CheckedAdapter(HTTPAdapter):
    """An HTTPAdapter whose pools open only CheckedConnections."""

    def __init__(self, peer_check: Callable[[str], str | None], **options) -> None:
        self._pool_classes = {
            "http": type("CheckedHTTPConnectionPool", (HTTPConnectionPool,),
                         {"ConnectionCls": _checked_connection(HTTPConnection, peer_check)}),
            "https": type("CheckedHTTPSConnectionPool", (HTTPSConnectionPool,),
                          {"ConnectionCls": _checked_connection(HTTPSConnection, peer_check)}),
        }
        super().__init__(**options)

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pool_classes


def _causes(error: BaseException, depth: int = 6) -> Iterator[BaseException]:
    """`error` and what it wraps (requests -> urllib3 -> socket), without their messages."""
    yield error
    if depth:
        for inner in (*error.args, getattr(error, "reason", None), error.__cause__, error.__context__):
            if isinstance(inner, BaseException) and inner is not error:
                yield from _causes(inner, depth - 1)


def _no_connection(error: BaseException) -> str:
    """Why a request got no answer at all, from the exception chain (never its text: it names the URL)."""
    causes = list(_causes(error))
    if any(isinstance(cause, ConnectionRefusedError) for cause in causes):
        return "connection refused"
    if any(isinstance(cause, (NameResolutionError, socket.gaierror)) for cause in causes):
        return "host name does not resolve"
    if any(isinstance(cause, RemoteDisconnected) for cause in causes):
        return "connection closed without an answer"
    if any(isinstance(cause, ConnectionResetError) for cause in causes):
        return "connection reset without an answer"
    return f"connection failed ({type(error).__name__})"


def _sniff(head: bytes) -> str | None:
    """'HTML' or 'not JSON' when the first byte of a body already says it cannot be JSON."""
    first = head[:1]
    if first == b"<":
        return "HTML"
    if first.isascii() and first not in _JSON_STARTS:
        return "not JSON"
    return None


class PsaHttp:
    """GETs (and POSTs) JSON to one PSA with pooling, retries, deadlines, a rate limit and one origin.

    - origin: credentials (auth, headers) go only to the origin of `base_url` (scheme, host,
      port). Redirects are followed by hand, at most MAX_REDIRECTS, and only on that origin;
      an absolute URL (a paging link, a redirect) to another origin is refused before anything
      is sent to it. Every connection's peer address is checked (see `origin.address_problem`),
      so a host name that resolves to a metadata or link-local address gets nothing either;
    - every attempt has `deadline` seconds from connect to the last byte of its body: headers
      included (a watchdog shuts the connection), the body streamed in chunks whose reads
      never wait longer than the time left; `timeout` bounds the connect and each silence;
    - retried: connection errors, timeouts, the deadline, 429, 500/502/503/504, a body cut off
      or reset mid-transfer and a body that cannot be decoded (Content-Encoding, UTF-8,
      JSON), up to `max_retries` times, waiting `Retry-After` when given (capped at
      `max_wait`) or else `backoff * 2**attempt` with jitter (also capped);
    - fewer retries for what will not heal: `unanswered_attempts` attempts at most without an
      answer (connection, timeouts, deadline), and two invalid bodies (HTML, not JSON, not
      UTF-8, undecodable) in a row end the request; no retry starts once `entity_deadline`
      seconds have passed since this client's first request (one client reads one entity);
    - error bodies (4xx/5xx, HTML, what cannot start a JSON text) are read up to
      ERROR_BODY_CAP bytes, never whole;
    - not retried: other 4xx (401/403 raise PsaAuthError at once);
    - given up: PsaUnreachable when no answer came in time (connection, timeouts, deadline),
      PsaError otherwise, with one line naming the method, the path and the last reason. An
      origin given up as unreachable is remembered in `reachability` (shared by the clients
      of one sync): their requests fail at once with the same reason.
    """

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        auth: PsaAuth | tuple[str, str] | None = None,
        secrets: Iterable[str] = (),
        max_retries: int = 5,
        backoff: float = 0.5,
        max_wait: float = 60.0,
        timeout: float = DEFAULT_TIMEOUT,
        deadline: float = DEFAULT_DEADLINE,
        entity_deadline: float = DEFAULT_ENTITY_DEADLINE,
        unanswered_attempts: int = UNANSWERED_ATTEMPTS,
        pool_size: int = 10,
        rate_limiter: RateLimiter | None = None,
        reachability: Reachability | None = None,
        allow_private: bool | None = None,
        peer_check: Callable[[str], str | None] | None = None,
    ) -> None:
        if deadline <= 0 or entity_deadline <= 0:
            raise ValueError("the request and entity deadlines must be positive")
        if unanswered_attempts < 1:
            raise ValueError("unanswered_attempts must be at least 1")
        allow_private = private_allowed() if allow_private is None else allow_private
        self.origin = check_base_url(base_url, allow_private=allow_private)  # BaseUrlError: one line, no secret
        self.base_url = base_url.rstrip("/") + "/"
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_wait = max_wait
        self.timeout = timeout
        self.deadline = deadline
        self.entity_deadline = entity_deadline
        self.unanswered_attempts = unanswered_attempts
        self.rate_limiter = rate_limiter or RateLimiter(None)
        self.reachability = reachability or Reachability()
        if isinstance(auth, tuple):
            auth = BasicAuth(*auth)
        self._secrets = sorted({s for s in (*secrets, *(auth.secrets() if auth else ())) if s and len(s) >= 3},
                               key=len, reverse=True)
        self._jitter = random.Random()
        self._started: float | None = None  # monotonic time of the first request
        # Sent per request, after the origin check; the session itself carries no credential.
        self._headers = dict(headers or {})
        self._auth = auth
        self.session = requests.Session()
        adapter = _CheckedAdapter(peer_check or (lambda address: address_problem(address, allow_private=allow_private)),
                                  pool_connections=2, pool_maxsize=max(pool_size, 1), max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        # The environment's proxies (NO_PROXY included) and CA bundle (REQUESTS_CA_BUNDLE,
        # CURL_CA_BUNDLE) for the PSA's origin, read once: requests reads them again for every
        # request, a fifth of its time per request (1,700 requests a ConnectWise full sync).
        # Every request goes to this origin (`_require_own_origin`), so once is exact. ~/.netrc
        # is not read: every PSA request carries its own credentials.
        environment = self.session.merge_environment_settings(self.base_url, {}, None, None, None)
        self.session.proxies.update(environment["proxies"] or {})
        self.session.verify = environment["verify"]
        self.session.trust_env = False
        register_headers(headers or {})  # what a PSA may echo back in an error body (auths register their own)

    def close(self) -> None:
        self.session.close()

    def url(self, path: str) -> str:
        """Absolute URL for `path` (relative to base_url) or `path` itself if absolute."""
        parts = urlsplit(path)
        return path if parts.scheme and parts.netloc else urljoin(self.base_url, path.lstrip("/"))

    def link(self, href: str, page_url: str) -> str:
        """The absolute URL of a paging link `href` found on the page at `page_url`; PsaError
        when it leads to another origin (nothing is sent there)."""
        url = urljoin(page_url, href)
        self._require_own_origin(url, self.scrub(urlsplit(page_url).path), "a paging link")
        return url

    def get_json(
        self, path: str, params: Mapping[str, object] | None = None, headers: Mapping[str, str] | None = None,
        *, abandon: Abandon | None = None, decode: Callable[[bytes], object] = json.loads,
    ) -> tuple[object, Mapping[str, str]]:
        """(decoded JSON body, response headers) of GET `path` (see `request`)."""
        return self.request("GET", path, params, headers=headers, abandon=abandon, decode=decode)

    def request(
        self, method: str, path: str, params: Mapping[str, object] | None = None, json: object = None, *,
        data: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None,
        abandon: Abandon | None = None, decode: Callable[[bytes], object] = json.loads, authenticated: bool = True,
    ) -> tuple[object, Mapping[str, str]]:
        """(decoded JSON body, response headers) of `method` (GET or POST) `path`.

        `json`: a body sent as JSON (Autotask's queries), `data`: a form body (OAuth2 token
        requests); both are sent again on every attempt. `abandon`: called by another thread to
        give up on this request (it then raises PsaError). `decode`: bytes -> object (a
        ValueError is a body that is not JSON, retried like one). `authenticated`: False sends
        no credential but the body's (the token request of an OAuth2 auth). A 401 is asked
        again once when the auth says a fresh credential may cure it (an expired token).
        """
        method = method.upper()
        if method not in ("GET", "POST"):
            raise ValueError(f"unsupported method {method}")
        url = self.url(path)
        url_path = self.scrub(urlsplit(url).path)
        self._require_own_origin(url, url_path, "a URL", method)
        if self._started is None:
            self._started = time.monotonic()
        send = _Request(method, url_path, params, json, data, headers, authenticated)
        attempt = unanswered = 0
        invalid_before = renewed = False
        while True:
            self._check(abandon, send)
            down = self.reachability.down(str(self.origin))
            if down is not None:
                raise PsaUnreachable(f"{down}; not retried for the other entities", url_path=url_path)
            if authenticated and self._auth is not None:
                self._auth.prepare(self)
            self.rate_limiter.acquire()
            try:
                return self._attempt(url, send, abandon, decode)
            except PsaAuthError as refused:
                if renewed or refused.status != 401 or not authenticated or self._auth is None \
                        or not self._auth.after_401(refused.sent_authorization):
                    raise
                renewed = True
            except _Retry as failure:
                self._check(abandon, send)  # an abandoned body breaks too: not the PSA's doing
                attempt += 1
                unanswered += failure.unreachable
                wait = self._wait(attempt - 1, failure.retry_after)
                if attempt > self.max_retries or unanswered >= self.unanswered_attempts:
                    stop = ""
                elif failure.invalid and invalid_before:
                    stop = " (an invalid body twice in a row)"
                elif time.monotonic() + wait - self._started > self.entity_deadline:
                    stop = f" (no retry after the entity's {self.entity_deadline:g} s budget)"
                else:
                    stop = None
                if stop is not None:
                    raise self._give_up(failure, attempt, stop, send)
                invalid_before = failure.invalid
                if failure.status == 429:  # the whole instance waits, then goes slower
                    self.rate_limiter.back_off(wait)
                self._pause(attempt - 1, wait, failure.retry_after is not None, failure.reason, send, abandon)

    def _give_up(self, failure: "_Retry", attempts: int, stop: str, send: "_Request") -> PsaError:
        url_path = send.url_path
        details = f": {failure.details}" if failure.details else ""
        message = (f"{send.method} {url_path}: {failure.reason} after {attempts} attempt{'s' if attempts > 1 else ''}"
                   f"{stop}{details}")
        if failure.unreachable:
            self.reachability.mark_down(str(self.origin), message)
            return PsaUnreachable(message, status=failure.status, url_path=url_path)
        return PsaError(message, status=failure.status, url_path=url_path)

    def _require_own_origin(self, url: str, url_path: str, what: str, method: str = "GET") -> None:
        try:
            same = origin_of(url) == self.origin
        except ValueError:
            same = False
        if not same:
            raise PsaError(f"{method} {url_path}: the PSA sent {what} to another origin ({shown_origin(url)}); "
                           f"credentials are only sent to {self.origin}", url_path=url_path)

    def _attempt(self, url: str, send: "_Request", abandon,
                 decode: Callable[[bytes], object] = json.loads) -> tuple[object, Mapping[str, str]]:
        """One request within the deadline, same-origin redirects followed (a 307/308 keeps the
        method and body, the others become a GET); raises _Retry for what another attempt may cure."""
        url_path = send.url_path
        deadline_at = time.monotonic() + self.deadline
        for hop in range(MAX_REDIRECTS + 1):
            response = self._send(url, send, deadline_at)
            with response:
                if response.status_code not in REDIRECT_STATUSES:
                    return self._answer(response, send, deadline_at, abandon, decode)
                location = response.headers.get("Location")
                if not location:
                    raise PsaError(f"{send.method} {url_path}: HTTP {response.status_code} redirect without a Location",
                                   status=response.status_code, url_path=url_path)
                url = urljoin(response.url, location)
                self._require_own_origin(url, url_path, "a redirect", send.method)
                send = send.redirected(response.status_code)
        raise PsaError(f"{send.method} {url_path}: more than {MAX_REDIRECTS} redirects", url_path=url_path)

    def _send(self, url: str, send: "_Request", deadline_at: float) -> requests.Response:
        """The response of one request, headers read, body not yet; credentials only now, after
        the origin check."""
        url_path = send.url_path
        left = deadline_at - time.monotonic()
        if left <= 0:
            raise _Retry(self._deadline_passed(), unreachable=True)
        timeout = min(self.timeout, left)
        capped = timeout < self.timeout  # the deadline, not the timeout, ends a silence now
        try:
            with _Watch(left, on_send=self.rate_limiter.sent) as watch:
                response = self.session.request(
                    send.method, url, params=send.params, json=send.json, data=send.data,
                    headers={**self._headers, **(send.headers or {})},
                    auth=self._auth if send.authenticated else None, timeout=(timeout, timeout), stream=True,
                    allow_redirects=False)
        except _RefusedPeer as refused:
            raise PsaError(f"{send.method} {url_path}: refused before sending anything: {refused}", url_path=url_path) from None
        except requests.ConnectTimeout:
            reason = self._deadline_passed() if capped or watch.expired else f"no connection within {timeout:g} s"
            raise _Retry(reason, unreachable=True) from None
        except requests.Timeout:
            reason = self._deadline_passed() if capped or watch.expired else f"no answer within {timeout:g} s"
            raise _Retry(reason, unreachable=True) from None
        except requests.ConnectionError as error:
            reason = self._deadline_passed() if watch.expired else _no_connection(error)
            raise _Retry(reason, unreachable=True) from None
        except requests.RequestException as error:
            raise PsaError(f"{send.method} {url_path}: request failed ({type(error).__name__})", url_path=url_path) from None
        if watch.expired:  # the headers came just as the watchdog shut the connection
            response.close()
            raise _Retry(self._deadline_passed(), unreachable=True)
        return response

    def _answer(self, response: requests.Response, send: "_Request", deadline_at: float, abandon,
                decode: Callable[[bytes], object]) -> tuple[object, Mapping[str, str]]:
        url_path = send.url_path
        status = response.status_code
        if status >= 400:
            try:
                data = self._read_body(response, deadline_at, abandon, send, cap=ERROR_BODY_CAP)
            except _Retry:
                data = b""  # an error answer is judged by its status; its body only adds details
            if status in (401, 403):
                refused = PsaAuthError(
                    f"{send.method} {url_path}: HTTP {status} {response.reason or ''}: {self._vendor_message(data)}",
                    status=status, url_path=url_path,
                )
                refused.sent_authorization = response.request.headers.get("Authorization")
                raise refused
            if status in RETRY_STATUSES:
                raise _Retry(f"HTTP {status} {response.reason or ''}".strip(), status=status,
                             retry_after=parse_retry_after(response.headers.get("Retry-After")),
                             details=self._vendor_message(data))
            raise PsaError(
                f"{send.method} {url_path}: HTTP {status} {response.reason or ''}: {self._vendor_message(data)}",
                status=status, url_path=url_path,
            )
        data = self._read_body(response, deadline_at, abandon, send, sniff=True)
        try:
            return decode(data), response.headers
        except UnicodeDecodeError:
            raise _Retry("body is not valid UTF-8", status=status, invalid=True) from None
        except ValueError:
            raise _Retry("body is not JSON", status=status, invalid=True) from None

    def _read_body(self, response: requests.Response, deadline_at: float, abandon, send: "_Request", *,
                   cap: int | None = None, sniff: bool = False) -> bytes:
        """The body, read as it arrives; every read waits at most the time left. Only `cap` bytes
        of it when given; with `sniff`, a body that cannot be JSON (HTML, or a first byte no JSON
        text starts with) is read up to ERROR_BODY_CAP and raises _Retry."""
        raw = response.raw
        expected = _content_length(response)
        verdict = "HTML" if sniff and "html" in response.headers.get("Content-Type", "").lower() else None
        if verdict is not None:
            cap = ERROR_BODY_CAP
        chunks: list[bytes] = []
        size = 0
        with abandon.reading(raw) if abandon is not None else nullcontext():
            while cap is None or size < cap:
                self._check(abandon, send)
                left = deadline_at - time.monotonic()
                if left <= 0:
                    raise _Retry(f"{self._deadline_passed()} ({_got(raw, expected)})", unreachable=True)
                _set_read_timeout(raw, min(self.timeout, left))
                try:
                    chunk = raw.read1(_CHUNK, decode_content=True)
                except ReadTimeoutError:
                    reason = self._deadline_passed() if left < self.timeout else \
                        f"no complete answer within {self.timeout:g} s"
                    raise _Retry(f"{reason} ({_got(raw, expected)})", unreachable=True) from None
                except DecodeError:
                    encoding = response.headers.get("Content-Encoding", "?")
                    raise _Retry(f"body cannot be decoded (Content-Encoding {encoding})",
                                 status=response.status_code, invalid=True) from None
                except (HTTPError, OSError) as error:
                    raise _Retry(_broken(error, raw, expected), status=response.status_code) from None
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if sniff and verdict is None and size <= ERROR_BODY_CAP:
                    head = b"".join(chunks).lstrip(b" \t\r\n").removeprefix(b"\xef\xbb\xbf")
                    if head:
                        sniff = False
                        verdict = _sniff(head)
                        if verdict is not None:
                            cap = ERROR_BODY_CAP
        if verdict is not None:
            raise _Retry(f"body is {verdict}, not JSON" if verdict == "HTML" else f"body is {verdict}",
                         status=response.status_code, invalid=True)
        return b"".join(chunks)

    def _deadline_passed(self) -> str:
        return f"no complete answer within the {self.deadline:g} s deadline"

    @staticmethod
    def _check(abandon: Abandon | None, send: "_Request") -> None:
        if abandon is not None and abandon.is_set():
            raise PsaError(f"{send.method} {send.url_path}: abandoned", url_path=send.url_path)

    def _wait(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number `attempt + 1`."""
        if retry_after is not None:
            return min(retry_after, self.max_wait) + self._jitter.uniform(0, 0.1)
        return min(self.backoff * (2 ** attempt), self.max_wait) * self._jitter.uniform(0.5, 1.0)

    def _pause(self, attempt: int, wait: float, retry_after: bool, reason: str, send: "_Request",
               abandon: Abandon | None = None) -> None:
        log.warning("%s %s: %s; retry %d of %d in %.2f s%s", send.method, send.url_path, reason, attempt + 1, self.max_retries,
                    wait, " (Retry-After)" if retry_after else "")
        if abandon is None:
            time.sleep(wait)
        elif abandon.wait(wait):
            self._check(abandon, send)

    def _vendor_message(self, data: bytes) -> str:
        try:
            body = json.loads(data)
            message = body.get("message") if isinstance(body, dict) else None
        except ValueError:
            message = None
        message = str(message or data.decode("utf-8", "replace") or "no details")[:300]
        return self.scrub(message)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return " ".join(scrub_secrets(text).split())


def _content_length(response: requests.Response) -> int | None:
    try:
        return int(response.headers["Content-Length"])
    except (KeyError, ValueError):
        return None


def _set_read_timeout(raw, seconds: float) -> None:
    """Bound the next read of a streamed body (urllib3 sets the socket timeout once per request)."""
    sock = getattr(raw.connection, "sock", None)
    if sock is not None:
        sock.settimeout(max(seconds, 0.001))


def _got(raw, expected: int | None) -> str:
    return f"got {raw.tell()} of {expected} bytes" if expected is not None else f"got {raw.tell()} bytes"


def _broken(error: Exception, raw, expected: int | None) -> str:
    """Why a body stopped early: cut off (the server closed) or reset (the connection was torn)."""
    causes = [error, *error.args, error.__cause__, error.__context__]
    if any(isinstance(cause, ConnectionResetError) for cause in causes):
        return f"connection reset mid-body ({_got(raw, expected)})"
    if any(isinstance(cause, IncompleteRead) for cause in causes):
        return f"body cut off mid-transfer ({_got(raw, expected)})"
    return f"connection broken mid-body ({_got(raw, expected)}; {type(error).__name__})"


def utc_text(moment: datetime) -> str:
    """YYYY-MM-DDTHH:MM:SSZ of `moment` (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
