"""End-to-end syncs of an Autotask tenant, for what only Autotask does (the ConnectWise
expectations themselves run over Autotask in test_source_sync.py): its thread limit, and
entities with no modified field read whole by a nightly sync. Autotask's products are its
Products and its Services (the simulator's: one per recurring catalog item, ids of their own)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from hg_pipeline.orchestration.run import run_sync
from hg_pipeline.simulators.autotask import AutotaskSimulator
from hg_pipeline.simulators.autotask_billing import service_id
from hg_pipeline.simulators.datasets import generate, iso
from hg_pipeline_tests.orchestration.test_full_sync import expected, live_rows


def services(dataset) -> set[str]:
    """The psa_ids of the services the simulator serves: "svc-" and their own ids."""
    return {f"svc-{service_id(p['id'])}" for p in dataset.catalog if p.get("recurringFlag")}


def autotask_expected(dataset) -> dict[str, set[str]]:
    """test_full_sync's `expected`, with the services among the products: TEST_MAPPING imports
    their PSA category "Services" like any new category."""
    want = expected(dataset)
    want["products"] = want["products"] | services(dataset)
    return want


@pytest.fixture
def autotask():
    with AutotaskSimulator(generate("small", seed=1)) as simulator:
        yield simulator


def test_thread_limit_rejections_are_waited_out(warehouse, pg_url, instance, autotask, make_tenant):
    tenant = make_tenant("acme", autotask, source="autotask")
    # One thread per entity, and slow answers: the run's steps on one Autotask entity (a
    # reference list and its records) are turned away, with a status that is no 429.
    autotask.thread_limit, autotask.thread_limit_status, autotask.latency = 1, 400, 0.05
    outcome = run_sync(pg_url, tenant, "full", instance=instance)
    assert outcome.success, outcome.reason
    for entity, psa_ids in autotask_expected(autotask.dataset).items():
        assert set(live_rows(warehouse, entity, tenant)) == psa_ids, entity


def test_nightly_reads_whole_what_has_no_modified_field(warehouse, pg_url, instance, autotask, make_tenant):
    tenant = make_tenant("acme", autotask, source="autotask")
    assert run_sync(pg_url, tenant, "full", instance=instance).success
    product = next(p for p in autotask.dataset.catalog if str(p["id"]) in expected(autotask.dataset)["products"])
    with autotask.lock:
        product["description"] = "Renamed Laptop"
        product["_info"] = dict(product["_info"], lastUpdated=iso(datetime.now(timezone.utc) + timedelta(minutes=1)))
    outcome = run_sync(pg_url, tenant, "nightly", instance=instance)
    assert outcome.success, outcome.reason
    assert outcome.stages["products_raw"]["mode"] == "full"
    assert outcome.stages["products_raw"]["received"] == len(autotask.dataset.catalog) + len(services(autotask.dataset))
    assert outcome.stages["companies_raw"]["mode"] == "incremental"
    assert outcome.stages["companies_raw"]["received"] == 0
    assert live_rows(warehouse, "products", tenant)[str(product["id"])]["name"] == "Renamed Laptop"
