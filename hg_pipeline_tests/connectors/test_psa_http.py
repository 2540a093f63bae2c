"""The shared HTTP core against a real loopback server: retries, Retry-After, errors, rate limit."""

from __future__ import annotations

import socket
import threading
import time
from email.utils import formatdate

import pytest

from hg_pipeline.connectors.http import (
    PsaAuthError,
    PsaError,
    PsaHttp,
    PsaUnreachable,
    RateLimiter,
    parse_retry_after,
)
from hg_pipeline.simulators.connectwise import API_PREFIX, DEMO_CREDENTIALS as DEMO


def client(sim, **options):
    options.setdefault("backoff", 0.01)
    return PsaHttp(sim.base_url + API_PREFIX, headers={"clientId": DEMO["client_id"]},
                   auth=(f"{DEMO['company_id']}+{DEMO['public_key']}", DEMO["private_key"]),
                   secrets=DEMO.values(), **options)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_get_json_returns_body_and_headers(sim):
    body, headers = client(sim).get_json("company/companies", {"pageSize": 10})
    assert len(body) == 10 and "page=2" in headers["Link"]


def test_5xx_retried_then_succeeds(sim):
    sim.fail_next(3, status=503)
    body, _ = client(sim, max_retries=5).get_json("system/members", {"pageSize": 100})
    assert len(body) == 12 and sim.requests == 4


def test_5xx_gives_up_after_max_retries(sim):
    sim.fail_next(10, status=502)
    with pytest.raises(PsaError) as error:
        client(sim, max_retries=2).get_json("system/members")
    assert error.value.status == 502 and error.value.url_path.endswith("/system/members")
    assert sim.requests == 3


def test_other_4xx_not_retried(sim):
    with pytest.raises(PsaError) as error:
        client(sim).get_json("company/companies", {"conditions": "name like \"x%\""})
    assert error.value.status == 400 and sim.requests == 1
    assert "\n" not in str(error.value)


def test_retry_after_is_honoured(sim):
    sim.fail_next(1, status=429, retry_after=2)
    started = time.monotonic()
    body, _ = client(sim).get_json("system/members", {"pageSize": 100})
    assert time.monotonic() - started >= 2 and len(body) == 12


def test_retry_after_capped_by_max_wait(sim):
    sim.fail_next(1, status=429, retry_after=30)
    started = time.monotonic()
    client(sim, max_wait=0.2).get_json("system/members")
    assert time.monotonic() - started < 5


def test_parse_retry_after():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    now = time.time()
    assert 9 <= parse_retry_after(formatdate(now + 10, usegmt=True), now=now) <= 11
    assert parse_retry_after(formatdate(now - 100, usegmt=True), now=now) == 0.0


def test_auth_error_has_status_and_no_secret(sim):
    http = PsaHttp(sim.base_url + API_PREFIX, auth=("bluepeak+demo-public-key", "wrong-key-value"),
                   headers={"clientId": DEMO["client_id"]}, secrets=["wrong-key-value", DEMO["client_id"]])
    with pytest.raises(PsaAuthError) as error:
        http.get_json("company/companies")
    assert error.value.status == 401 and "401" in str(error.value)
    assert "wrong-key-value" not in str(error.value) and sim.requests == 1


def test_unreachable_is_quick():
    http = PsaHttp(f"http://127.0.0.1:{free_port()}/", max_retries=2, backoff=0.01, timeout=2)
    started = time.monotonic()
    with pytest.raises(PsaUnreachable) as error:
        http.get_json("anything", {"secretish": "x"})
    assert time.monotonic() - started < 3
    assert error.value.status is None and error.value.url_path == "/anything"
    assert "secretish" not in str(error.value)


def _no_proxy_settings(monkeypatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy",
                 "NO_PROXY", "no_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


def test_the_environments_proxy_is_used_and_no_proxy_honoured(sim, monkeypatch):
    """The proxy settings are read once, for the PSA's origin (requests would read them per
    request): HTTP_PROXY sends the requests to the proxy (here a closed port: unreachable)..."""
    _no_proxy_settings(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(PsaUnreachable):
        client(sim, max_retries=0, timeout=2).get_json("system/members")
    assert sim.requests == 0
    # ...and NO_PROXY naming the PSA's host sends them straight to it.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    body, _ = client(sim).get_json("system/members", {"pageSize": 100})
    assert len(body) == 12 and sim.requests == 1


def test_the_environments_ca_bundle_verifies_a_psa_over_tls(monkeypatch):
    from hg_pipeline.simulators.connectwise import ConnectWiseSimulator
    from hg_pipeline.simulators.datasets import generate

    _no_proxy_settings(monkeypatch)
    with ConnectWiseSimulator(generate("small", seed=1), tls=True) as tls_sim:
        assert tls_sim.base_url.startswith("https://")
        with pytest.raises(PsaError, match="(?i)certificate|ssl|tls"):
            client(tls_sim, max_retries=0).get_json("system/members")
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls_sim.ca_file)
        body, _ = client(tls_sim).get_json("system/members", {"pageSize": 100})
        assert len(body) == 12


def test_each_request_tells_the_rate_limiter_when_it_is_written(sim):
    """The slot of a request counts from its write (RateLimiter.sent), retries included, on a
    new connection and on a pooled one."""

    class Counting(RateLimiter):
        def __init__(self) -> None:
            super().__init__(100)
            self.granted = self.written = 0

        def acquire(self) -> float:
            self.granted += 1
            return super().acquire()

        def sent(self) -> None:
            self.written += 1
            assert self._mine.slot[0] <= time.monotonic()
            super().sent()

    limiter = Counting()
    http = client(sim, rate_limiter=limiter, max_retries=3)
    sim.fail_next(1, status=503)
    for _ in range(2):
        http.get_json("system/members", {"pageSize": 100})
    assert limiter.granted == limiter.written == sim.requests == 3


def test_rate_limiter_keeps_every_second_within_the_rate_across_threads():
    limiter = RateLimiter(20)
    stamps: list[float] = []
    lock = threading.Lock()

    def worker():
        for _ in range(10):
            limiter.acquire()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(stamps) == 40
    assert time.monotonic() - started >= 1.0  # 40 starts at 20 per rolling second need more than a second
    stamps.sort()
    assert all(sum(1 for t in stamps[i:] if t - stamps[i] < 1.0) <= 20 for i in range(len(stamps)))
    assert RateLimiter(None).acquire() == 0.0
    with pytest.raises(ValueError):
        RateLimiter(0)
