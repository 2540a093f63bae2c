"""The HTTP core every PSA connector shares: pooled session, retries, rate limit, errors.

Nothing here knows a vendor. Errors carry the status and the URL path (no query, no
headers) and never a credential: values passed as `secrets` are scrubbed from messages.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

log = logging.getLogger("hg_pipeline.connectors")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


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
    """No answer from the PSA (connection refused, DNS, timeouts) after the retries."""


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
    """GETs JSON from one PSA with pooling, retries and a rate limit.

    - retried: connection errors, timeouts, 429, 500/502/503/504 and unreadable JSON, up to
      `max_retries` times, waiting `Retry-After` when given (capped at `max_wait`) or else
      `backoff * 2**attempt` with jitter (also capped);
    - not retried: other 4xx (401/403 raise PsaAuthError at once).
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
        pool_size: int = 10,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_wait = max_wait
        self.timeout = timeout
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

    def close(self) -> None:
        self.session.close()

    def url(self, path: str) -> str:
        """Absolute URL for `path` (relative to base_url) or `path` itself if absolute."""
        return urljoin(self.base_url, path.lstrip("/")) if "://" not in path else path

    def get_json(
        self, path: str, params: Mapping[str, object] | None = None, headers: Mapping[str, str] | None = None
    ) -> tuple[object, Mapping[str, str]]:
        """(decoded JSON body, response headers) of GET `path`."""
        url = self.url(path)
        url_path = self.scrub(urlsplit(url).path)
        attempt = 0
        while True:
            self.rate_limiter.acquire()
            try:
                response = self.session.get(url, params=params, headers=headers, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as error:
                reason = "timed out" if isinstance(error, requests.Timeout) else "connection failed"
                if attempt >= self.max_retries:
                    raise PsaUnreachable(
                        f"GET {url_path}: {reason} after {attempt + 1} attempts ({type(error).__name__})",
                        url_path=url_path,
                    ) from None
                attempt = self._pause(attempt, None, f"{reason} ({type(error).__name__})", url_path)
                continue
            status = response.status_code
            if status in (401, 403):
                raise PsaAuthError(
                    f"GET {url_path}: HTTP {status} {response.reason or ''}: {self._vendor_message(response)}",
                    status=status, url_path=url_path,
                )
            if status in RETRY_STATUSES:
                if attempt >= self.max_retries:
                    raise PsaError(
                        f"GET {url_path}: HTTP {status} {response.reason or ''} after {attempt + 1} attempts: "
                        f"{self._vendor_message(response)}",
                        status=status, url_path=url_path,
                    )
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                response.close()
                attempt = self._pause(attempt, retry_after, f"HTTP {status}", url_path)
                continue
            if status >= 400:
                raise PsaError(
                    f"GET {url_path}: HTTP {status} {response.reason or ''}: {self._vendor_message(response)}",
                    status=status, url_path=url_path,
                )
            try:
                body = response.json()
            except ValueError:
                if attempt >= self.max_retries:
                    raise PsaError(f"GET {url_path}: HTTP {status} but the body is not JSON",
                                   status=status, url_path=url_path) from None
                attempt = self._pause(attempt, None, "body is not JSON", url_path)
                continue
            return body, response.headers

    def _pause(self, attempt: int, retry_after: float | None, reason: str, url_path: str) -> int:
        if retry_after is not None:
            wait = min(retry_after, self.max_wait) + self._jitter.uniform(0, 0.1)
        else:
            wait = min(self.backoff * (2 ** attempt), self.max_wait) * self._jitter.uniform(0.5, 1.0)
        log.warning("GET %s: %s; retry %d of %d in %.2f s%s", url_path, reason, attempt + 1, self.max_retries,
                    wait, " (Retry-After)" if retry_after is not None else "")
        time.sleep(wait)
        return attempt + 1

    def _vendor_message(self, response: requests.Response) -> str:
        try:
            body = response.json()
            message = body.get("message") if isinstance(body, dict) else None
        except ValueError:
            message = None
        message = str(message or response.text or "no details")[:300]
        return self.scrub(message)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return " ".join(text.split())


def utc_text(moment: datetime) -> str:
    """YYYY-MM-DDTHH:MM:SSZ of `moment` (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
