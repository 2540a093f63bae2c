"""A hostile or broken PSA on loopback: it cannot lead the credentials to another origin, and
silent, trickling or garbage-spewing PSAs fail fast with an accurate one-line reason.

Every server here is a real HTTP server on 127.0.0.1 whose answers the test writes; "the other
origin" is a second one that records every request it gets, headers included.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import insert, select

from hg_pipeline.cli import main
from hg_pipeline.connectors import PsaAuthError, PsaError, PsaUnreachable, build_connector
from hg_pipeline.connectors.http import ERROR_BODY_CAP, PsaHttp, Reachability
from hg_pipeline.connectors.origin import BaseUrlError, address_problem
from hg_pipeline.orchestration.resources import PsaResource
from hg_pipeline.simulators.connectwise import DEMO_CREDENTIALS
from hg_pipeline.warehouse.tables import sync_runs, tenants
from hg_pipeline.warehouse.tenants import Tenant

AUTH = (f"{DEMO_CREDENTIALS['company_id']}+{DEMO_CREDENTIALS['public_key']}", DEMO_CREDENTIALS["private_key"])
CLIENT_ID = DEMO_CREDENTIALS["client_id"]
COMPANIES = "/v4_6_release/apis/3.0/company/companies"
TEN_MB = 10 * 1024 * 1024
# What may be in flight beyond what the client reads: the kernel's socket buffers on both sides.
IN_FLIGHT = 512 * 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format, *args) -> None:  # noqa: A002 - quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        psa = self.server.psa
        with psa.lock:
            psa.requests.append((self.path, dict(self.headers)))
        psa.answer(self)

    # what the tests' answers use
    def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.send_counted(body)

    def json(self, value, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.reply(status, json.dumps(value).encode(), headers)

    def send_counted(self, body: bytes, chunk: int = 16 * 1024) -> None:
        """Write `body`, counting the bytes the socket took, until the client hangs up."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
        for offset in range(0, len(body), chunk):
            try:
                self.wfile.write(body[offset:offset + chunk])
            except OSError:
                self.close_connection = True
                return
            with self.server.psa.lock:
                self.server.psa.sent += len(body[offset:offset + chunk])

    def hold(self) -> None:
        """Say nothing more until the server stops."""
        self.server.psa.stopping.wait()
        self.close_connection = True

    def drip(self, data: bytes, interval: float) -> None:
        for offset in range(len(data)):
            if self.server.psa.stopping.wait(interval):
                break
            try:
                self.wfile.write(data[offset:offset + 1])
            except OSError:
                break
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    psa: "Psa"

    def handle_error(self, request, client_address) -> None:  # a client that gave up: no news
        pass


class Psa:
    """A loopback HTTP server: `answer(handler)` answers every GET; `requests` holds (path,
    headers) of each one received, `sent` the body bytes the socket accepted."""

    def __init__(self, answer: Callable[[_Handler], None] | None = None) -> None:
        self.answer = answer or (lambda handler: handler.json([]))
        self.lock = threading.Lock()
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.sent = 0
        self.stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.psa = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def servers():
    made: list[Psa] = []

    def make(answer: Callable[[_Handler], None] | None = None) -> Psa:
        made.append(Psa(answer))
        return made[-1]

    yield make
    for psa in made:
        psa.stop()


def client(psa: Psa, **options) -> PsaHttp:
    options.setdefault("backoff", 0.01)
    return PsaHttp(psa.base_url, headers={"clientId": CLIENT_ID}, auth=AUTH, secrets=DEMO_CREDENTIALS.values(),
                   **options)


def connectwise_api(next_link: Callable[[], str]) -> Callable[[_Handler], None]:
    """A ConnectWise-like API whose companies page links (rel="next") to `next_link()`."""

    def answer(handler: _Handler) -> None:
        path = handler.path.split("?", 1)[0]
        if path.startswith("/login/companyinfo/"):
            handler.json({"Codebase": "v4_6_release/"})
        elif path.endswith("/count"):
            handler.json({"count": 1})
        elif path == COMPANIES:
            handler.json([{"id": 1, "name": "Acme"}], headers={"Link": f'<{next_link()}>; rel="next"'})
        else:
            handler.json([])

    return answer


# --- 1. credentials go to the tenant's own origin only ------------------------------------


def test_a_paging_link_to_another_origin_is_refused_and_the_other_origin_gets_nothing(servers):
    other = servers()
    psa = servers(connectwise_api(lambda: f"{other.base_url}/v4_6_release/apis/3.0/company/companies?page=2"))
    connector = build_connector("connectwise", psa.base_url, DEMO_CREDENTIALS, page_size=1, backoff=0.01)
    with pytest.raises(PsaError) as raised:
        list(connector.iter_pages("companies"))
    connector.close()
    assert str(raised.value) == (
        f"GET {COMPANIES}: the PSA sent a paging link to another origin ({other.base_url}); "
        f"credentials are only sent to {psa.base_url}")
    assert other.requests == []
    # the PSA itself did get the credentials, as it should
    assert all(headers.get("clientId") == CLIENT_ID for path, headers in psa.requests if "companyinfo" not in path)


def test_a_paging_link_on_the_own_origin_is_followed(servers):
    psa = servers()
    pages = {"/v4_6_release/apis/3.0/company/companies": [{"id": 1}], "/next-page": [{"id": 2}]}

    def answer(handler: _Handler) -> None:
        path = handler.path.split("?", 1)[0]
        if path.endswith("/count"):
            handler.json({"count": 1})
        elif path in pages:
            link = {"Link": f'<{psa.base_url}/next-page>; rel="next"'} if path == COMPANIES else {}
            handler.json(pages[path], headers=link)
        else:
            handler.json({"Codebase": "v4_6_release/"})

    psa.answer = answer
    with build_connector("connectwise", psa.base_url, DEMO_CREDENTIALS, page_size=1, backoff=0.01) as connector:
        assert [r["id"] for page in connector.iter_pages("companies") for r in page] == [1, 2]
    assert psa.requests[-1][0] == "/next-page" and psa.requests[-1][1]["clientId"] == CLIENT_ID


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_to_another_origin_is_refused_with_one_line(servers, status):
    other = servers()
    psa = servers(lambda handler: handler.reply(status, headers={"Location": f"{other.base_url}/steal?token=abc"}))
    with pytest.raises(PsaError) as raised:
        client(psa).get_json("company/companies", {"conditions": "x"})
    assert str(raised.value) == (
        f"GET /company/companies: the PSA sent a redirect to another origin ({other.base_url}); "
        f"credentials are only sent to {psa.base_url}")
    assert other.requests == [] and len(psa.requests) == 1  # not retried either
    assert "token" not in str(raised.value)


def test_a_redirect_to_another_scheme_or_port_of_the_same_host_is_another_origin(servers):
    psa = servers()
    port = psa.base_url.rsplit(":", 1)[1]
    for target, shown in ((f"https://127.0.0.1:{port}/x", f"https://127.0.0.1:{port}"),
                          ("http://127.0.0.1/x", "http://127.0.0.1:80"),
                          ("http://localhost:" + port + "/x", f"http://localhost:{port}")):
        psa.answer = lambda handler, target=target: handler.reply(302, headers={"Location": target})
        with pytest.raises(PsaError, match=re.escape(f"to another origin ({shown}); credentials are only sent to")):
            client(psa).get_json("x")


def test_an_absolute_url_to_another_origin_is_refused_before_anything_is_sent(servers):
    other = servers()
    psa = servers()
    http = client(psa)
    with pytest.raises(PsaError, match=r"^GET /next: the PSA sent a URL to another origin \(http://127\.0\.0\.1:\d+\); "):
        http.get_json(f"{other.base_url}/next?page=2")  # e.g. a nextPageUrl from a body
    assert other.requests == [] and psa.requests == []


def test_the_session_itself_carries_no_credential(servers):
    http = client(servers())
    assert http.session.auth is None
    assert "clientId" not in http.session.headers and "Authorization" not in http.session.headers


def test_a_same_origin_redirect_is_followed_with_the_credentials(servers):
    psa = servers()

    def answer(handler: _Handler) -> None:
        if handler.path.startswith("/old"):
            handler.reply(301, headers={"Location": "/new?page=1"})
        elif handler.path.startswith("/new?"):
            handler.reply(307, headers={"Location": f"{psa.base_url}/newest"})
        else:
            handler.json([{"id": 7}])

    psa.answer = answer
    body, _ = client(psa).get_json("old", {"page": 1})
    assert body == [{"id": 7}]
    assert [path for path, _ in psa.requests] == ["/old?page=1", "/new?page=1", "/newest"]
    assert all(headers["clientId"] == CLIENT_ID and headers["Authorization"].startswith("Basic ")
               for _, headers in psa.requests)


def test_a_redirect_loop_ends_with_one_line(servers):
    psa = servers(lambda handler: handler.reply(302, headers={"Location": "/loop"}))
    with pytest.raises(PsaError, match=r"^GET /loop: more than 5 redirects$"):
        client(psa).get_json("loop")
    assert len(psa.requests) == 6


def test_a_host_name_at_a_forbidden_address_gets_nothing(servers):
    """The address a connection really reached is judged before the request is written. A test
    cannot serve on 169.254.169.254, so the check is told that loopback is that address."""
    psa = servers()
    port = psa.base_url.rsplit(":", 1)[1]
    as_if_metadata = lambda address: address_problem("169.254.169.254", allow_private=False)  # noqa: E731
    http = PsaHttp(f"http://localhost:{port}", headers={"clientId": CLIENT_ID}, auth=AUTH,
                   peer_check=as_if_metadata, backoff=0.01)
    with pytest.raises(PsaError) as raised:
        http.get_json("company/companies")
    assert type(raised.value) is PsaError  # refused, not retried
    assert str(raised.value) == ("GET /company/companies: refused before sending anything: "
                                 "localhost is at 127.0.0.1, a cloud metadata address")
    assert psa.requests == []
    # with the real policy, loopback is allowed: the same name works
    body, _ = PsaHttp(f"http://localhost:{port}", headers={"clientId": CLIENT_ID}, auth=AUTH).get_json("x")
    assert body == [] and len(psa.requests) == 1


@pytest.mark.parametrize("address, problem", [
    ("169.254.169.254", "a cloud metadata address"),
    ("169.254.1.1", "a link-local address"),
    ("fe80::1%eth0", "a link-local address"),
    ("fd00:ec2::254", "a cloud metadata address"),
    ("100.100.100.200", "a cloud metadata address"),
    ("::ffff:169.254.169.254", "a cloud metadata address"),
    ("64:ff9b::a9fe:a9fe", "a cloud metadata address"),
    ("0.0.0.0", "the unspecified address"),
    ("::", "the unspecified address"),
    ("10.1.2.3", "a private address (set HG_ALLOW_PRIVATE_PSA=1 for a PSA on your own network)"),
    ("172.20.0.1", "a private address (set HG_ALLOW_PRIVATE_PSA=1 for a PSA on your own network)"),
    ("192.168.1.10", "a private address (set HG_ALLOW_PRIVATE_PSA=1 for a PSA on your own network)"),
    ("fd12::1", "a private address (set HG_ALLOW_PRIVATE_PSA=1 for a PSA on your own network)"),
    ("127.0.0.1", None), ("127.8.9.10", None), ("::1", None), ("203.0.113.9", None), ("2001:db8::1", None),
])
def test_the_address_policy(address, problem):
    assert address_problem(address, allow_private=False) == problem
    if problem is not None and "private" in problem:
        assert address_problem(address, allow_private=True) is None


def test_a_stored_base_url_that_breaks_the_policy_is_refused_at_connector_build(monkeypatch):
    for key, value in DEMO_CREDENTIALS.items():
        monkeypatch.setenv(f"HOSTILE_CW_{key.upper()}", value)
    refs = {key: f"env:HOSTILE_CW_{key.upper()}" for key in DEMO_CREDENTIALS}
    resource = PsaResource()
    with pytest.raises(BaseUrlError, match=r"^base-url host 169\.254\.169\.254 is a cloud metadata address$"):
        resource.connector_for(Tenant("old", "Old", "connectwise", "http://169.254.169.254", refs))
    with pytest.raises(BaseUrlError, match=r"^base-url host 10\.0\.0\.5 is a private address"):
        resource.connector_for(Tenant("old", "Old", "connectwise", "http://10.0.0.5:8080", refs))
    monkeypatch.setenv("HG_ALLOW_PRIVATE_PSA", "1")
    resource.connector_for(Tenant("old", "Old", "connectwise", "http://10.0.0.5:8080", refs)).close()


# --- 5. failure budgets ---------------------------------------------------------------------


def test_the_default_worst_case_of_a_silent_or_trickling_psa_is_under_three_minutes():
    """Defaults: 3 attempts without an answer, each at most the 45 s deadline (20 s of silence
    ends one sooner), 0.5 + 1 s of backoff: 136.5 s for the first entity, then every other entity
    of the run fails at once. What is left of the 3 minutes is the run's own work."""
    resource = PsaResource()
    assert (resource.timeout_seconds, resource.request_deadline_seconds) == (20, 45)
    assert resource.worst_case_unanswered_seconds() == 3 * 45 + 0.5 + 1.0
    assert resource.worst_case_unanswered_seconds() < 150


def test_headers_then_silence_is_no_complete_answer_and_three_attempts_at_most(servers):
    def answer(handler: _Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "100")
        handler.end_headers()
        handler.hold()

    psa = servers(answer)
    started = time.monotonic()
    with pytest.raises(PsaUnreachable) as raised:
        client(psa, timeout=0.5, deadline=10, max_retries=5).get_json("company/companies")
    assert str(raised.value) == ("GET /company/companies: no complete answer within 0.5 s (got 0 of 100 bytes) "
                                 "after 3 attempts")
    assert len(psa.requests) == 3  # not 6: a PSA that does not answer is not asked 6 times
    assert time.monotonic() - started < 3 * 0.5 + 1.5


def test_a_silent_psa_is_no_answer(servers):
    psa = servers(lambda handler: handler.hold())
    with pytest.raises(PsaUnreachable, match=r"^GET /x: no answer within 0\.5 s after 3 attempts$"):
        client(psa, timeout=0.5).get_json("x")


def test_a_psa_dripping_its_headers_is_cut_at_the_deadline(servers):
    def answer(handler: _Handler) -> None:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
        handler.drip(b"X-Slow: " + b"a" * 10_000 + b"\r\n\r\n", interval=0.1)

    psa = servers(answer)
    started = time.monotonic()
    with pytest.raises(PsaUnreachable, match=r"^GET /x: no complete answer within the 1 s deadline after 3 attempts$"):
        client(psa, timeout=0.5, deadline=1).get_json("x")
    assert time.monotonic() - started < 3 * 1 + 1.5


def test_an_unreachable_psa_is_not_asked_again_by_the_other_entities(servers):
    psa = servers(lambda handler: handler.hold())
    shared = Reachability()
    with pytest.raises(PsaUnreachable):
        client(psa, timeout=0.3, reachability=shared).get_json("company/companies")
    assert len(psa.requests) == 3
    started = time.monotonic()
    with pytest.raises(PsaUnreachable) as raised:
        client(psa, timeout=0.3, reachability=shared).get_json("company/contacts")
    assert time.monotonic() - started < 0.2 and len(psa.requests) == 3
    assert str(raised.value) == ("GET /company/companies: no answer within 0.3 s after 3 attempts; "
                                 "not retried for the other entities")
    with pytest.raises(PsaUnreachable):  # another run (its own Reachability) asks again
        client(psa, timeout=0.3, max_retries=0).get_json("company/contacts")
    assert len(psa.requests) == 4


@pytest.mark.parametrize("content_type, body, reason", [
    ("text/html", b"<html>" + b"x" * TEN_MB, "body is HTML, not JSON"),
    ("application/json", b"\n  <!DOCTYPE html>" + b"x" * TEN_MB, "body is HTML, not JSON"),
    ("application/json", b"Service temporarily down " + b"x" * TEN_MB, "body is not JSON"),
    ("application/json", b'[{"id": 1}, oops', "body is not JSON"),
])
def test_a_body_that_is_not_json_twice_is_not_asked_a_third_time_and_is_read_up_to_the_cap(
        servers, content_type, body, reason):
    psa = servers(lambda handler: handler.reply(200, body, content_type=content_type))
    started = time.monotonic()
    with pytest.raises(PsaError) as raised:
        client(psa, max_retries=5).get_json("company/companies")
    assert type(raised.value) is PsaError
    assert str(raised.value) == f"GET /company/companies: {reason} after 2 attempts (an invalid body twice in a row)"
    assert len(psa.requests) == 2
    assert psa.sent <= 2 * (ERROR_BODY_CAP + IN_FLIGHT)  # of 20 MB asked to be sent
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("status, attempts, error", [(500, 6, PsaError), (404, 1, PsaError), (401, 1, PsaAuthError)])
def test_a_huge_error_body_is_read_up_to_the_cap(servers, status, attempts, error):
    body = b'{"message": "' + b"e" * TEN_MB + b'"}'
    psa = servers(lambda handler: handler.reply(status, body))
    started = time.monotonic()
    with pytest.raises(error) as raised:
        client(psa, max_retries=5).get_json("company/companies")
    message = str(raised.value)
    assert message.startswith(f"GET /company/companies: HTTP {status} ") and len(message) < 500
    assert len(psa.requests) == attempts
    assert psa.sent <= attempts * (ERROR_BODY_CAP + IN_FLIGHT)
    assert time.monotonic() - started < 5


def test_no_retry_starts_after_the_entity_budget(servers):
    psa = servers(lambda handler: handler.json({"message": "busy"}, status=503))
    http = client(psa, max_retries=50, backoff=0.2, entity_deadline=1.0)
    started = time.monotonic()
    with pytest.raises(PsaError, match=r"^GET /x: HTTP 503 Service Unavailable after \d attempts "
                                       r"\(no retry after the entity's 1 s budget\): busy$"):
        http.get_json("x")
    assert time.monotonic() - started < 1.5
    assert 2 <= len(psa.requests) <= 5
    with pytest.raises(PsaError, match="entity's 1 s budget"):  # the budget is the client's, not the request's
        http.get_json("y")
    assert len(psa.requests) <= 6


# --- end to end: hg-pipeline sync --full against a silent and a trickling PSA --------------


@pytest.fixture
def sync_cli(pg_url, warehouse, monkeypatch, tmp_path, capsys):
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    credentials = []
    for key, value in DEMO_CREDENTIALS.items():
        monkeypatch.setenv(f"HOSTILE_CW_{key.upper()}", value)
        credentials += ["--credential", f"{key}=env:HOSTILE_CW_{key.upper()}"]

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        if args[:2] == ("tenant", "add"):
            args = (*args, *credentials)
        code = main([*args, "--database-url", pg_url])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _full_sync_fails_fast(sync_cli, warehouse, psa: Psa, monkeypatch, reason: str) -> float:
    assert sync_cli("tenant", "add", "hostile", "--source", "connectwise", "--base-url", psa.base_url)[0] == 0
    started = time.monotonic()
    code, _, err = sync_cli("sync", "hostile", "--full")
    elapsed = time.monotonic() - started
    assert code == 2 and err.count("\n") == 1, err
    assert re.fullmatch(rf"hg-pipeline: tenant hostile: extract \w+ failed: PSA unreachable at {psa.base_url}: "
                        rf"GET /login/companyinfo/\*\*\*: {reason} after 3 attempts\n", err), err
    assert "connection failed" not in err and DEMO_CREDENTIALS["company_id"] not in err
    # the first entity tried 3 times; the 7 other entities of the full sync asked nothing
    assert len(psa.requests) == 3
    with warehouse.connect() as conn:
        assert conn.scalar(select(sync_runs.c.status).where(sync_runs.c.tenant_id == "hostile")) == "failure"
    return elapsed


def test_a_silent_psa_fails_the_whole_full_sync_within_one_entity_s_budget(sync_cli, warehouse, servers,
                                                                           monkeypatch):
    monkeypatch.setenv("HG_PSA_TIMEOUT", "1")  # the defaults, scaled down: 20 s -> 1 s of silence
    psa = servers(lambda handler: handler.hold())
    elapsed = _full_sync_fails_fast(sync_cli, warehouse, psa, monkeypatch, r"no answer within 1 s")
    budget = PsaResource(timeout_seconds=1, request_deadline_seconds=1).worst_case_unanswered_seconds()
    assert elapsed < budget + 15  # 15 s: the run's own start and bookkeeping


def test_a_trickling_psa_fails_the_whole_full_sync_within_one_entity_s_budget(sync_cli, warehouse, servers,
                                                                             monkeypatch):
    monkeypatch.setenv("HG_PSA_TIMEOUT", "1")  # the defaults, scaled down: 45 s -> 2 s deadline
    monkeypatch.setenv("HG_PSA_REQUEST_DEADLINE", "2")

    def answer(handler: _Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "100000")
        handler.end_headers()
        handler.drip(b"[" + b" " * 99_998 + b"]", interval=0.2)  # always under the 1 s of silence

    psa = servers(answer)
    elapsed = _full_sync_fails_fast(sync_cli, warehouse, psa, monkeypatch,
                                    r"no complete answer within the 2 s deadline \(got \d+ of 100000 bytes\)")
    budget = PsaResource(timeout_seconds=1, request_deadline_seconds=2).worst_case_unanswered_seconds()
    assert elapsed < budget + 15


def test_a_full_sync_of_a_tenant_stored_with_a_metadata_url_is_refused_with_one_line(sync_cli, warehouse):
    """A row written before `tenant add` checked the URL: the connector build refuses it."""
    refs = json.dumps({key: f"env:HOSTILE_CW_{key.upper()}" for key in DEMO_CREDENTIALS}, sort_keys=True)
    with warehouse.begin() as conn:
        conn.execute(insert(tenants).values(tenant_id="legacy", name="Legacy", source="connectwise",
                                            base_url="http://169.254.169.254/latest", credentials=refs,
                                            created_at=datetime.now(timezone.utc)))
    code, _, err = sync_cli("sync", "legacy", "--full")
    assert code == 2 and err.count("\n") == 1, err
    assert re.fullmatch(r"hg-pipeline: tenant legacy: extract \w+ failed: "
                        r"base-url host 169\.254\.169\.254 is a cloud metadata address\n", err), err


def test_one_watchdog_cuts_concurrent_drips_each_at_its_own_deadline(servers):
    """The attempts of a process share one watchdog thread: a shorter deadline set while a
    longer one waits still ends its attempt on time, and the longer one ends at its own."""
    def answer(handler: _Handler) -> None:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
        handler.drip(b"X-Slow: " + b"a" * 10_000 + b"\r\n\r\n", interval=0.1)

    psa = servers(answer)
    ended: dict[float, float] = {}

    def ask(deadline: float) -> None:
        started = time.monotonic()
        with pytest.raises(PsaUnreachable, match=rf"within the {deadline:g} s deadline after 1 attempt$"):
            client(psa, timeout=5, deadline=deadline, max_retries=0).get_json("x")
        ended[deadline] = time.monotonic() - started

    slow = threading.Thread(target=ask, args=(3.0,))
    slow.start()
    time.sleep(0.3)  # the 3 s deadline waits in the watchdog first
    ask(0.6)
    slow.join()
    assert 0.6 <= ended[0.6] < 1.5, ended
    assert 3.0 <= ended[3.0] < 4.0, ended
    assert [t.name for t in threading.enumerate()].count("psa-watchdog") == 1
