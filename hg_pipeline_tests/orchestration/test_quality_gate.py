"""Blocking checks stop the load: the warehouse keeps its previous rows."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import select

from hg_pipeline.orchestration.run import run_sync
from hg_pipeline.warehouse.load import live_counts
from hg_pipeline.warehouse.mappings import store_mapping
from hg_pipeline.warehouse.tables import companies, quarantine
from hg_pipeline_tests.orchestration.scenario import TEST_MAPPING
from hg_pipeline_tests.orchestration.test_full_sync import expected, live_rows


def test_volume_guard_blocks_a_sync_that_would_delete_too_much(warehouse, pg_url, instance, simulator, make_tenant):
    tenant = make_tenant("acme", simulator)
    assert run_sync(pg_url, tenant, "full", instance=instance).success
    before = live_counts(warehouse, tenant)
    with simulator.lock:
        del simulator.dataset.configurations[: len(simulator.dataset.configurations) // 2]
    outcome = run_sync(pg_url, tenant, "full", instance=instance)
    assert not outcome.success
    assert "soft_delete_volume" in outcome.reason and "assets_mapped" in outcome.reason
    assert "would soft-delete" in outcome.reason
    assert "assets" not in outcome.stages  # the load never ran
    assert live_counts(warehouse, tenant) == before


def test_a_failing_expectation_is_named_and_nothing_is_loaded(warehouse, pg_url, instance, simulator, make_tenant):
    """A HighGround company with a legacy type linked by a `map` rule keeps that type, which the
    suite refuses: the companies load (and everything downstream of the failed check) does not run."""
    tenant = make_tenant("acme", simulator)
    now = datetime.now(timezone.utc)
    with warehouse.begin() as conn:
        conn.execute(companies.insert(), {"id": "hg-legacy", "tenant_id": tenant, "name": "Legacy Reseller",
                                          "hg_type": "reseller", "origin": "highground",
                                          "created_at": now, "updated_at": now})
    assert run_sync(pg_url, tenant, "full", instance=instance).success
    before = live_counts(warehouse, tenant)
    competitor = next(c for c in simulator.dataset.companies if c["types"][0]["name"] == "Competitor")
    store_mapping(warehouse, tenant, TEST_MAPPING.replace(
        "  types: {Customer",
        f'  records: {{"{competitor["id"]}": {{action: map, to: hg-legacy}}}}\n  types: {{Customer'))
    outcome = run_sync(pg_url, tenant, "full", instance=instance)
    assert not outcome.success
    assert outcome.failed_step == "companies_mapped"
    assert "check valid on companies_mapped failed" in outcome.reason and "hg_type" in outcome.reason
    assert "companies" not in outcome.stages and "contacts" not in outcome.stages
    assert live_counts(warehouse, tenant) == before
    with warehouse.connect() as conn:
        legacy = conn.execute(select(companies.c.psa_id).where(companies.c.id == "hg-legacy")).scalar()
    assert legacy is None  # the link was never loaded


def test_contacts_of_a_company_the_psa_does_not_have_are_quarantined(warehouse, pg_url, instance, simulator,
                                                                      make_tenant):
    tenant = make_tenant("acme", simulator)
    with simulator.lock:
        orphan = dict(simulator.dataset.contacts[0], company={"id": 999999, "identifier": "Ghost", "name": "Ghost"})
        simulator.dataset.contacts[0] = orphan
    outcome = run_sync(pg_url, tenant, "full", instance=instance)
    assert outcome.success, outcome.reason
    with warehouse.connect() as conn:
        rows = conn.execute(select(quarantine.c.entity, quarantine.c.psa_id, quarantine.c.reason)).all()
    assert rows == [("contacts", str(orphan["id"]), "company 999999 is unknown")]
    assert outcome.stages["contacts_mapped"]["quarantined"] == 1


def test_every_class_of_bad_record_is_quarantined_with_its_reason(warehouse, pg_url, instance, simulator,
                                                                   make_tenant):
    data = simulator.dataset
    no_id = {k: v for k, v in data.companies[0].items() if k != "id"}
    twice = dict(data.contacts[5])
    wrong_types = dict(data.companies[3], id=900001, types="Customer")
    bad_email = dict(data.contacts[10], id=900002, communicationItems=[
        {"type": {"id": 1, "name": "Email"}, "value": "not-an-email", "communicationType": "Email", "defaultFlag": True}])
    bad_price = dict(data.catalog[2], id=900003, price="twelve")
    orphan = dict(data.contacts[12], id=900004, company={"id": 777777, "identifier": "Ghost", "name": "Ghost"})
    simulator.malformed = {"companies": [no_id, wrong_types], "contacts": [twice, bad_email, orphan],
                           "catalog": [bad_price]}
    tenant = make_tenant("acme", simulator)
    outcome = run_sync(pg_url, tenant, "full", instance=instance)
    assert outcome.success, outcome.reason
    with warehouse.connect() as conn:
        rows = conn.execute(select(quarantine.c.entity, quarantine.c.psa_id, quarantine.c.reason,
                                   quarantine.c.payload)).all()
    found = {(entity, psa_id): reason for entity, psa_id, reason, _ in rows}
    assert found == {
        ("companies", None): "company: id missing",
        ("companies", "900001"): "company 900001: types should be a list, got str",
        ("contacts", str(twice["id"])): f"id {twice['id']} returned twice",
        ("contacts", "900002"): "contact 900002: 'not-an-email' is not an email address",
        ("products", "900003"): "product 900003: price 'twelve' is not a number",
        ("contacts", "900004"): "company 777777 is unknown",
    }
    assert all(payload for *_, payload in rows)  # the PSA record is kept for inspection
    # everything else loaded as if the bad records were not there
    for entity, psa_ids in expected(data).items():
        assert set(live_rows(warehouse, entity, tenant)) == psa_ids, entity
