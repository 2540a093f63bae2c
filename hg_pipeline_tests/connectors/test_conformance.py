"""What every connector must do against its simulator, parametrised over the registry's
sources that have one: page sizes, auth refusals, rate limits, server errors, broken
transfers, incremental reads and the id sweep that finds deletions."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from hg_pipeline.connectors import PsaAuthError, PsaError, build_connector
from hg_pipeline.connectors.registry import simulated
from hg_pipeline.simulators.datasets import generate
from hg_pipeline_tests.connectors.conformance import ADAPTERS, demo_credentials, start_simulator

SOURCES = [name for name in simulated() if name in ADAPTERS]
ENTITY = "companies"


@pytest.fixture(params=SOURCES)
def psa(request):
    simulator = start_simulator(request.param, generate("small", seed=1))
    made = []

    def connect(credentials=None, **options):
        options.setdefault("backoff", 0.02)
        options.setdefault("max_wait", 2.0)
        connector = build_connector(request.param, simulator.base_url, credentials or demo_credentials(request.param),
                                    **options)
        made.append(connector)
        return connector

    adapter = ADAPTERS[request.param]
    yield request.param, simulator, adapter, connect
    for connector in made:
        connector.close()
    simulator.stop()


def _ids(connector, entity=ENTITY, **kwargs) -> list[str]:
    return [connector.normalize(entity, payload)["psa_id"]
            for page in connector.iter_pages(entity, **kwargs) for payload in page]


def _expected(adapter, simulator, entity=ENTITY) -> list[str]:
    return [adapter.psa_id(record) for record in adapter.records(simulator, entity)]


def test_the_connector_is_what_the_extract_stage_needs(psa):
    from hg_pipeline.connectors.base import Connector

    name, simulator, adapter, connect = psa
    connector = connect()
    assert isinstance(connector, Connector) and connector.source == name
    assert connector.payload_id({"id": 7}) == "7"


@pytest.mark.parametrize("page_size", [1, 7, None])
def test_every_record_once_whatever_the_page_size(psa, page_size):
    name, simulator, adapter, connect = psa
    expected = _expected(adapter, simulator)
    connector = connect(page_size=page_size or len(expected))
    assert _ids(connector) == expected
    assert sorted(connector.iter_ids(ENTITY)) == sorted(expected)


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_fail_at_once_without_a_secret(psa, status):
    name, simulator, adapter, connect = psa
    if status == 401:
        credentials = {key: value + "-wrong" for key, value in demo_credentials(name).items()}
        connector = connect(credentials)
    else:
        simulator.fail_next(1, 403)
        connector = connect()
    simulator.reset_counts()
    with pytest.raises(PsaAuthError) as refused:
        _ids(connector)
    assert refused.value.status == status and "\n" not in str(refused.value)
    for value in demo_credentials(name).values():
        assert value not in str(refused.value)
    assert simulator.requests <= 2  # a refusal is not retried (an OAuth2 source may renew its token once)


def test_429_is_waited_out_as_retry_after_says(psa):
    name, simulator, adapter, connect = psa
    simulator.fail_next(2, 429, retry_after=1)
    started = datetime.now(timezone.utc)
    assert _ids(connect(max_wait=5)) == _expected(adapter, simulator)
    assert datetime.now(timezone.utc) - started >= timedelta(seconds=1.9)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried(psa, status):
    name, simulator, adapter, connect = psa
    simulator.fail_next(2, status)
    assert _ids(connect()) == _expected(adapter, simulator)


def test_server_errors_beyond_the_retries_fail_with_one_line(psa):
    name, simulator, adapter, connect = psa
    simulator.fail_next(10, 503)
    with pytest.raises(PsaError, match=r"HTTP 503 .*after 3 attempts") as failed:
        _ids(connect(max_retries=2))
    assert "\n" not in str(failed.value)


@pytest.mark.parametrize("mode", ["cut_body", "reset_mid_body"])
def test_a_broken_transfer_is_retried(psa, mode):
    name, simulator, adapter, connect = psa
    simulator.break_transfers(mode, first=2)
    assert _ids(connect(page_size=7)) == _expected(adapter, simulator)


def test_incremental_reads_only_what_changed(psa):
    name, simulator, adapter, connect = psa
    records = adapter.records(simulator, ENTITY)
    future = datetime.now(timezone.utc) + timedelta(days=400)
    connector = connect(page_size=7)
    assert connector.supports_incremental(ENTITY)
    assert _ids(connector, since=future) == []
    changed = [records[3], records[17]]
    with simulator.lock:
        for record in changed:
            adapter.touch(record, future + timedelta(hours=1))
    assert _ids(connector, since=future) == [adapter.psa_id(record) for record in changed]


def test_the_id_sweep_finds_deletions(psa):
    name, simulator, adapter, connect = psa
    records = adapter.records(simulator, ENTITY)
    with simulator.lock:
        gone = [records.pop(9), records.pop(0)]
    swept = set(connect(page_size=7).iter_ids(ENTITY, previous=len(records) + 2))
    assert swept == set(_expected(adapter, simulator))
    assert not swept & {adapter.psa_id(record) for record in gone}
