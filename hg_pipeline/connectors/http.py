"""The HTTP core every PSA connector shares: pooled session, retries, deadlines, rate limit, errors.

Nothing here knows a vendor. Errors carry the status and the URL path (no query, no
headers) and never a credential: values passed as `secrets` are scrubbed from messages.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from http.client import IncompleteRead  # urllib3's own IncompleteRead derives from it
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import DecodeError, HTTPError, ReadTimeoutError

from hg_pipeline.secrets import register_basic, register_headers, scrub as scrub_secrets

log = logging.getLogger("hg_pipeline.connectors")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
DEFAULT_DEADLINE = 120.0  # seconds one request may take, from connect to its body's last byte
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


class PsaUnreachable(PsaError):
    """No answer from the PSA (connection refused, DNS, timeouts, the deadline) after the retries."""


class _Retry(Exception):
    """One attempt failed in a way another attempt may cure: `reason` goes into the final
    message, `unreachable` picks PsaUnreachable over PsaError, `details` follows the attempts."""

    def __init__(self, reason: str, *, unreachable: bool = False, status: int | None = None,
                 retry_after: float | None = None, details: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.unreachable = unreachable
        self.status = status
        self.retry_after = retry_after
        self.details = details


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
    """At most `per_second` request starts per second, spaced evenly; None = no limit.

    Thread-safe: `acquire()` reserves the next slot under a lock and sleeps outside it.
    """

    def __init__(self, per_second: float | None) -> None:
        if per_second is not None and per_second <= 0:
            raise ValueError("requests per second must be positive")
        self.per_second = per_second
        self._interval = 1.0 / per_second if per_second else 0.0
        self._lock = threading.Lock()
        self._next_slot = 0.0

    def acquire(self) -> float:
        """Block until a request may start; returns the seconds waited."""
        if not self._interval:
            return 0.0
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._interval
        wait = slot - now
        if wait > 0:
            time.sleep(wait)
        return wait


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


class PsaHttp:
    """GETs JSON from one PSA with pooling, retries, a deadline per request and a rate limit.

    - every request (one attempt) has `deadline` seconds from connect to the last byte of its
      body: the body is streamed in chunks and abandoned when the deadline passes, and no
      connect or read timeout is longer than the time left, so a server that sends its body
      one byte at a time cannot hold a sync (headers are bounded per read only);
    - retried: connection errors, timeouts, the deadline, 429, 500/502/503/504, a body cut off
      or reset mid-transfer and a body that cannot be decoded (Content-Encoding, UTF-8,
      JSON), up to `max_retries` times, waiting `Retry-After` when given (capped at
      `max_wait`) or else `backoff * 2**attempt` with jitter (also capped);
    - not retried: other 4xx (401/403 raise PsaAuthError at once);
    - given up: PsaUnreachable when no answer came in time (connection, timeouts, deadline),
      PsaError otherwise, with one line naming the method, the path and the last reason.
    """

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        secrets: Iterable[str] = (),
        max_retries: int = 5,
        backoff: float = 0.5,
        max_wait: float = 60.0,
        timeout: float = 30.0,
        deadline: float = DEFAULT_DEADLINE,
        pool_size: int = 10,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        if deadline <= 0:
            raise ValueError("the request deadline must be positive")
        self.base_url = base_url.rstrip("/") + "/"
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_wait = max_wait
        self.timeout = timeout
        self.deadline = deadline
        self.rate_limiter = rate_limiter or RateLimiter(None)
        self._secrets = sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True)
        self._jitter = random.Random()
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=max(pool_size, 1), max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update(headers or {})
        if auth is not None:
            self.session.auth = auth
        register_headers(headers or {})  # what a PSA may echo back in an error body
        if auth is not None:
            register_basic(*auth)

    def close(self) -> None:
        self.session.close()

    def url(self, path: str) -> str:
        """Absolute URL for `path` (relative to base_url) or `path` itself if absolute."""
        return urljoin(self.base_url, path.lstrip("/")) if "://" not in path else path

    def get_json(
        self, path: str, params: Mapping[str, object] | None = None, headers: Mapping[str, str] | None = None,
        *, abandon: Abandon | None = None,
    ) -> tuple[object, Mapping[str, str]]:
        """(decoded JSON body, response headers) of GET `path`.

        `abandon`: called by another thread to give up on this request (it then raises PsaError).
        """
        url = self.url(path)
        url_path = self.scrub(urlsplit(url).path)
        attempt = 0
        while True:
            self._check(abandon, url_path)
            self.rate_limiter.acquire()
            try:
                return self._attempt(url, url_path, params, headers, abandon)
            except _Retry as failure:
                self._check(abandon, url_path)  # an abandoned body breaks too: not the PSA's doing
                if attempt >= self.max_retries:
                    error = PsaUnreachable if failure.unreachable else PsaError
                    details = f": {failure.details}" if failure.details else ""
                    raise error(f"GET {url_path}: {failure.reason} after {attempt + 1} attempts{details}",
                                status=failure.status, url_path=url_path) from None
                attempt = self._pause(attempt, failure.retry_after, failure.reason, url_path, abandon)

    def _attempt(self, url: str, url_path: str, params, headers, abandon) -> tuple[object, Mapping[str, str]]:
        """One request within the deadline; raises _Retry for what another attempt may cure."""
        deadline_at = time.monotonic() + self.deadline
        timeout = min(self.timeout, self.deadline)
        try:
            response = self.session.get(url, params=params, headers=headers, timeout=(timeout, timeout), stream=True)
        except requests.Timeout as error:
            reason = self._deadline_passed() if self.deadline < self.timeout else "timed out"
            raise _Retry(f"{reason} ({type(error).__name__})", unreachable=True) from None
        except requests.ConnectionError as error:
            raise _Retry(f"connection failed ({type(error).__name__})", unreachable=True) from None
        except requests.RequestException as error:
            raise PsaError(f"GET {url_path}: request failed ({type(error).__name__})", url_path=url_path) from None
        with response:
            status = response.status_code
            try:
                data = self._read_body(response, deadline_at, abandon, url_path)
            except _Retry:
                if status < 400:
                    raise
                data = b""  # an error answer is judged by its status; its body only adds details
            if status in (401, 403):
                raise PsaAuthError(
                    f"GET {url_path}: HTTP {status} {response.reason or ''}: {self._vendor_message(data)}",
                    status=status, url_path=url_path,
                )
            if status in RETRY_STATUSES:
                raise _Retry(f"HTTP {status} {response.reason or ''}".strip(), status=status,
                             retry_after=parse_retry_after(response.headers.get("Retry-After")),
                             details=self._vendor_message(data))
            if status >= 400:
                raise PsaError(
                    f"GET {url_path}: HTTP {status} {response.reason or ''}: {self._vendor_message(data)}",
                    status=status, url_path=url_path,
                )
            try:
                return json.loads(data), response.headers
            except UnicodeDecodeError:
                raise _Retry("body is not valid UTF-8", status=status) from None
            except ValueError:
                raise _Retry("body is not JSON", status=status) from None

    def _read_body(self, response: requests.Response, deadline_at: float, abandon, url_path: str) -> bytes:
        """The whole body, read as it arrives; every read waits at most the time left."""
        raw = response.raw
        expected = _content_length(response)
        chunks: list[bytes] = []
        with abandon.reading(raw) if abandon is not None else nullcontext():
            while True:
                self._check(abandon, url_path)
                left = deadline_at - time.monotonic()
                if left <= 0:
                    raise _Retry(self._deadline_passed(), unreachable=True)
                _set_read_timeout(raw, min(self.timeout, left))
                try:
                    chunk = raw.read1(_CHUNK, decode_content=True)
                except ReadTimeoutError:
                    reason = self._deadline_passed() if left < self.timeout else "timed out mid-body"
                    raise _Retry(f"{reason} ({_got(raw, expected)})", unreachable=True) from None
                except DecodeError:
                    encoding = response.headers.get("Content-Encoding", "?")
                    raise _Retry(f"body cannot be decoded (Content-Encoding {encoding})",
                                 status=response.status_code) from None
                except (HTTPError, OSError) as error:
                    raise _Retry(_broken(error, raw, expected), status=response.status_code) from None
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)

    def _deadline_passed(self) -> str:
        return f"no complete answer within the {self.deadline:g} s deadline"

    @staticmethod
    def _check(abandon: Abandon | None, url_path: str) -> None:
        if abandon is not None and abandon.is_set():
            raise PsaError(f"GET {url_path}: abandoned", url_path=url_path)

    def _pause(self, attempt: int, retry_after: float | None, reason: str, url_path: str,
               abandon: Abandon | None = None) -> int:
        if retry_after is not None:
            wait = min(retry_after, self.max_wait) + self._jitter.uniform(0, 0.1)
        else:
            wait = min(self.backoff * (2 ** attempt), self.max_wait) * self._jitter.uniform(0.5, 1.0)
        log.warning("GET %s: %s; retry %d of %d in %.2f s%s", url_path, reason, attempt + 1, self.max_retries,
                    wait, " (Retry-After)" if retry_after is not None else "")
        if abandon is None:
            time.sleep(wait)
        elif abandon.wait(wait):
            self._check(abandon, url_path)
        return attempt + 1

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
