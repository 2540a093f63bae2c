"""Broken transfers against the simulator on loopback: bodies cut off, connections reset
mid-body, servers that drip, bodies that cannot be decoded. Retried like timeouts; given up
within the per-request deadline with one line naming the method, the path and the reason."""

from __future__ import annotations

import re
import threading
import time

import pytest
from sqlalchemy import select

from hg_pipeline.cli import main
from hg_pipeline.connectors import PsaAuthError, PsaError, PsaUnreachable
from hg_pipeline.orchestration.resources import psa_resource
from hg_pipeline.simulators.connectwise import DEMO_CREDENTIALS, ConnectWiseSimulator
from hg_pipeline.simulators.datasets import generate
from hg_pipeline.warehouse.load import live_counts
from hg_pipeline.warehouse.mappings import store_mapping
from hg_pipeline.warehouse.tables import sync_runs
from hg_pipeline.warehouse.tenants import Tenant
from hg_pipeline_tests.orchestration.scenario import TEST_MAPPING

COMPANIES = "/v4_6_release/apis/3.0/company/companies"
BACKOFF = 0.05

# mode -> (error class when permanent, the reason in the final message)
FAULTS = {
    "cut_body": (PsaError, r"body cut off mid-transfer \(got \d+ of \d+ bytes\)"),
    "reset_mid_body": (PsaError, r"connection reset mid-body \(got \d+ of \d+ bytes\)"),
    "drip": (PsaUnreachable, r"no complete answer within the 0\.5 s deadline \(got \d+ of \d+ bytes\)"),
    "bad_gzip": (PsaError, r"body cannot be decoded \(Content-Encoding gzip\)"),
    "bad_utf8": (PsaError, r"body is not valid UTF-8"),
    "bad_json": (PsaError, r"body is not JSON"),
}


def records(connector, entity):
    return [record for page in connector.iter_pages(entity) for record in page]


def budget(attempts: int, deadline: float) -> float:
    """The longest a request may take: every attempt to its deadline, every backoff, some slack."""
    return attempts * deadline + sum(BACKOFF * 2 ** i for i in range(attempts - 1)) + 1.0


def page_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("cw-page")]


@pytest.mark.parametrize("mode", FAULTS)
def test_a_fault_on_the_first_attempts_converges_to_the_exact_records(sim, connect, mode):
    connector = connect(sim, page_size=15, concurrency=3, max_retries=3, deadline=0.5, backoff=BACKOFF)
    sim.break_transfers(mode, path="/company/companies", first=2)
    assert records(connector, "companies") == sim.dataset.companies  # every record, in order, as sent
    # 3 pages, two of their first answers spoiled: exactly two requests more
    assert sim.requests_by_path["/company/companies"] == 3 + 2


@pytest.mark.parametrize("mode", FAULTS)
def test_a_permanent_fault_fails_within_the_deadline_with_one_line(sim, connect, mode):
    error_class, reason = FAULTS[mode]
    connector = connect(sim, max_retries=2, deadline=0.5, backoff=BACKOFF)
    sim.break_transfers(mode, path="/company/companies")
    started = time.monotonic()
    with pytest.raises(PsaError) as raised:
        records(connector, "companies")
    elapsed = time.monotonic() - started
    message = str(raised.value)
    assert type(raised.value) is error_class
    # an invalid body twice in a row will not heal: no third attempt
    attempts, note = (2, r" \(an invalid body twice in a row\)") if mode.startswith("bad_") else (3, "")
    assert re.fullmatch(rf"GET {COMPANIES}: {reason} after {attempts} attempts{note}", message), message
    assert raised.value.url_path == COMPANIES
    assert sim.requests_by_path["/company/companies"] == attempts
    assert elapsed < budget(3, 0.5)
    if mode == "drip":
        assert elapsed >= 3 * 0.5  # each attempt really waited out its deadline, no longer
    assert not any(secret in message for secret in DEMO_CREDENTIALS.values())


def test_a_silent_server_cannot_outlast_the_deadline_whatever_the_read_timeout(sim, connect):
    connector = connect(sim, max_retries=1, timeout=30, deadline=0.5, backoff=BACKOFF)
    sim.break_transfers("drip", path="/system/members", interval=60)  # headers, then nothing
    started = time.monotonic()
    with pytest.raises(PsaUnreachable, match=r"no complete answer within the 0\.5 s deadline \(got 0 of \d+ bytes\)"):
        records(connector, "members")
    assert time.monotonic() - started < budget(2, 0.5)


def test_one_failing_page_abandons_the_pages_in_flight_and_leaves_no_thread(sim, connect):
    connector = connect(sim, page_size=15, concurrency=4, max_retries=1, deadline=20, backoff=BACKOFF)
    sim.break_transfers("cut_body", path="/company/contacts", page=1)
    sim.break_transfers("drip", path="/company/contacts", interval=60)  # headers, then 20 s of silence a try
    started = time.monotonic()
    with pytest.raises(PsaError, match=r"^GET \S+/company/contacts: body cut off mid-transfer .* after 2 attempts$"):
        records(connector, "contacts")
    assert time.monotonic() - started < 3
    assert page_threads() == []


def test_a_consumer_that_stops_early_leaves_no_thread(sim, connect):
    connector = connect(sim, page_size=15, concurrency=4, deadline=20)
    sim.break_transfers("drip", path="/company/contacts", page=2, interval=60)  # page 2 would take 20 s
    pages = connector.iter_pages("contacts")
    assert [record["id"] for record in next(pages)] == list(range(1, 16))
    started = time.monotonic()
    pages.close()
    assert time.monotonic() - started < 2 and page_threads() == []


def test_an_error_answer_with_a_broken_body_is_still_that_error(sim, connect):
    wrong = dict(DEMO_CREDENTIALS, private_key="wrong-private-key")
    connector = connect(sim, credentials=wrong, max_retries=3, deadline=0.5)
    sim.break_transfers("cut_body")
    with pytest.raises(PsaAuthError, match="HTTP 401"):
        records(connector, "companies")
    assert sim.requests == 1  # a 401 is not retried, however its body ends


def test_request_deadline_comes_from_the_environment(monkeypatch, sim):
    monkeypatch.setenv("HG_PSA_REQUEST_DEADLINE", "7.5")
    resource = psa_resource()
    assert resource.request_deadline_seconds == 7.5
    tenant = Tenant("acme", "Acme", "connectwise", sim.base_url,
                    {key: f"env:T_CW_{key.upper()}" for key in DEMO_CREDENTIALS})
    for key, value in DEMO_CREDENTIALS.items():
        monkeypatch.setenv(f"T_CW_{key.upper()}", value)
    with resource.connector_for(tenant) as connector:
        assert connector.http.deadline == 7.5


# --- end to end: hg-pipeline sync ---------------------------------------------------------


def test_sync_with_a_permanently_cut_body_fails_with_one_line(pg_url, warehouse, monkeypatch, tmp_path, capsys):
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")  # as the project's dagster.yaml
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("HG_PSA_MAX_RETRIES", "1")
    monkeypatch.setenv("HG_PSA_REQUEST_DEADLINE", "5")
    credentials = []
    for key, value in DEMO_CREDENTIALS.items():
        monkeypatch.setenv(f"E2E_CW_{key.upper()}", value)
        credentials += ["--credential", f"{key}=env:E2E_CW_{key.upper()}"]
    with ConnectWiseSimulator(generate("small", seed=1)) as sim:
        assert main(["tenant", "add", "acme", "--source", "connectwise", "--base-url", sim.base_url,
                     *credentials, "--database-url", pg_url]) == 0
        store_mapping(warehouse, "acme", TEST_MAPPING)
        sim.break_transfers("cut_body", path="/company/companies")
        capsys.readouterr()
        code = main(["sync", "acme", "--full", "--database-url", pg_url])
        err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1, err
    assert re.fullmatch(
        rf"hg-pipeline: tenant acme: extract companies failed: "
        rf"GET {COMPANIES}: body cut off mid-transfer \(got \d+ of \d+ bytes\) after 2 attempts\n", err), err
    for noise in ("dagster._", "Traceback", "Error occurred while executing", *DEMO_CREDENTIALS.values()):
        assert noise not in err
    with warehouse.connect() as conn:
        error = conn.scalar(select(sync_runs.c.error).where(sync_runs.c.tenant_id == "acme"))
    assert "\n" not in error and "dagster" not in error.lower()
    assert error.startswith("companies_raw: tenant acme: extract companies failed: GET ") and COMPANIES in error
    assert live_counts(warehouse, "acme")["companies"] == 0  # nothing half-extracted was loaded
