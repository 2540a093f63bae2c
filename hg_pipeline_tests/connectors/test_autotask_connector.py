"""The Autotask connector against its simulator: the zone, picklists and UDFs, the thread
limit, and normalized records that match the shared dataset."""

from __future__ import annotations

import logging
import threading

import pytest

from hg_pipeline.connectors import PsaAuthError, PsaError, build_connector
from hg_pipeline.connectors.autotask import MAX_PAGE_SIZE
from hg_pipeline.simulators.autotask import DEMO_CREDENTIALS, AutotaskSimulator
from hg_pipeline.simulators.datasets import generate


@pytest.fixture
def sim():
    with AutotaskSimulator(generate("small", seed=1)) as simulator:
        yield simulator


@pytest.fixture
def connect():
    made = []

    def make(simulator, credentials=None, **options):
        options.setdefault("backoff", 0.02)
        options.setdefault("max_wait", 2.0)
        connector = build_connector("autotask", simulator.base_url, credentials or DEMO_CREDENTIALS, **options)
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()


def _read(connector, entity):
    return [connector.normalize(entity, payload) for page in connector.iter_pages(entity) for payload in page]


def test_records_normalize_as_the_dataset_says(sim, connect):
    connector = connect(sim, page_size=7)
    ds = sim.dataset
    companies = {r["psa_id"]: r for r in _read(connector, "companies")}
    assert set(companies) == {str(c["id"]) for c in ds.companies}
    for c in ds.companies:
        row = companies[str(c["id"])]
        assert row["name"] == c["name"] and row["types"] == [c["types"][0]["name"]] and row["deleted"] is False
    contacts = {r["psa_id"]: r for r in _read(connector, "contacts")}
    for c in ds.contacts:
        row = contacts[str(c["id"])]
        assert row["types"] == ([c["types"][0]["name"]] if c.get("types") else [])
        assert row["company_psa_id"] == (str(c["company"]["id"]) if c.get("company") else None)
        assert row["inactive"] == bool(c.get("inactiveFlag"))
    products = {r["psa_id"]: r for r in _read(connector, "products")}
    for p in ds.catalog:
        row = products[str(p["id"])]
        assert (row["category"], row["subcategory"]) == (p["category"]["name"], (p.get("subcategory") or {}).get("name"))
        assert (row["sku"], row["name"], row["price"]) == (p["identifier"], p["description"], p["price"])
    members = {r["psa_id"]: r for r in _read(connector, "members")}
    assert set(members) == {str(m["id"]) for m in ds.members}
    assets = {r["psa_id"]: r for r in _read(connector, "assets")}
    some = ds.configurations[0]
    assert assets[str(some["id"])]["asset_type"] == some["type"]["name"]
    assert assets[str(some["id"])]["company_psa_id"] == str(some["company"]["id"])


def test_reference_lists_come_from_picklists_and_udfs(sim, connect):
    connector = connect(sim)
    ds = sim.dataset
    assert {r["name"] for r in _read(connector, "company_types")} == {t["name"] for t in ds.company_types}
    used = {c["types"][0]["name"] for c in ds.contacts if c.get("types")}
    assert {r["name"] for r in _read(connector, "contact_types")} == used
    paths = {r["path"] for r in _read(connector, "product_categories")}
    assert {c["name"] for c in ds.categories} <= paths
    assert {f"{p['category']['name']}/{p['subcategory']['name']}" for p in ds.catalog if p.get("subcategory")} \
        == {path for path in paths if "/" in path}
    assert sorted(connector.iter_ids("company_types")) == sorted(r["psa_id"] for r in _read(connector, "company_types"))


def test_the_zone_is_looked_up_once_and_again_after_a_401(sim, connect):
    connector = connect(sim)
    _read(connector, "companies")
    _read(connector, "members")
    assert sim.zone_requests == 1
    sim.fail_next(1, 401)
    assert len(_read(connector, "members")) == len(sim.dataset.members)
    assert sim.zone_requests == 2


def test_a_401_after_the_zone_check_fails_at_once(sim, connect):
    connector = connect(sim, dict(DEMO_CREDENTIALS, secret="s3cr3t-wrong"))
    with pytest.raises(PsaAuthError) as refused:
        _read(connector, "companies")
    assert refused.value.status == 401 and "s3cr3t" not in str(refused.value) and "\n" not in str(refused.value)
    assert sim.zone_requests == 2 and sim.requests == 2


def test_a_zone_on_another_origin_gets_no_credential(connect):
    class Elsewhere(AutotaskSimulator):
        @property
        def zone_url(self) -> str:
            return f"http://localhost:{self.port}/zone5/atservicesrest/"

    with Elsewhere(generate("small", seed=1)) as sim:
        with pytest.raises(PsaError, match=r"zone is on another origin \(http://localhost:\d+\)") as refused:
            _read(connect(sim), "companies")
        assert "\n" not in str(refused.value) and sim.requests == 0


def test_pages_are_never_larger_than_500(sim, connect):
    connector = connect(sim, page_size=1000)
    assert connector.page_size == MAX_PAGE_SIZE
    assert len(_read(connector, "contacts")) == len(sim.dataset.contacts)


def _read_at_once(sim, connect, readers: int, entity: str = "contacts") -> list:
    """`readers` connectors reading `entity` at the same time; what each read (or raised)."""
    results: list = [None] * readers
    connectors = [connect(sim, page_size=5) for _ in range(readers)]

    def read(n):
        try:
            results[n] = len(_read(connectors[n], entity))
        except Exception as error:  # noqa: BLE001 - reported by the test
            results[n] = error
    threads = [threading.Thread(target=read, args=(n,)) for n in range(readers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_never_more_than_three_requests_at_once_per_entity(sim, connect, caplog):
    sim.latency = 0.02
    results = _read_at_once(sim, connect, 6)
    assert results == [len(sim.dataset.contacts)] * 6
    assert "Thread Threshold" not in caplog.text and "HTTP 500" not in caplog.text


@pytest.mark.parametrize("status", [500, 400])
def test_thread_threshold_rejections_are_waited_out_whatever_their_status(sim, connect, caplog, status):
    caplog.set_level(logging.INFO)  # whatever an earlier `hg-pipeline` call in this process left the root at
    sim.latency = 0.02
    sim.thread_limit, sim.thread_limit_status = 1, status
    results = _read_at_once(sim, connect, 3)
    assert results == [len(sim.dataset.contacts)] * 3
    # it was hit (a 500 is first retried by the HTTP core, the other statuses by the connector) and waited out
    assert f"HTTP {status}" in caplog.text or "thread threshold exceeded" in caplog.text
