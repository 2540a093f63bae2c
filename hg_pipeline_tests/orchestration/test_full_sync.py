"""Full syncs of a simulated ConnectWise into a real PostgreSQL, through Dagster."""

from __future__ import annotations

import time

from sqlalchemy import select

from hg_pipeline.ids import category_id, record_id
from hg_pipeline.orchestration.resources import PsaResource
from hg_pipeline.orchestration.run import run_sync
from hg_pipeline.simulators.connectwise import DEMO_CREDENTIALS, ConnectWiseSimulator
from hg_pipeline.simulators.datasets import generate
from hg_pipeline.warehouse.tables import LOADED_TABLES, quarantine, sync_runs

from hg_pipeline_tests.orchestration.scenario import COMPANY_TYPES, CONTACT_TYPES_IMPORTED


def live_rows(engine, entity: str, tenant_id: str) -> dict[str, dict]:
    table = LOADED_TABLES[entity]
    with engine.connect() as conn:
        rows = conn.execute(select(table).where(table.c.tenant_id == tenant_id, table.c.deleted_at.is_(None)))
        return {row["psa_id"]: dict(row) for row in rows.mappings()}


def expected(dataset) -> dict[str, set[str]]:
    """What TEST_MAPPING must load, computed from the vendor records alone."""
    companies = {
        str(c["id"]) for c in dataset.companies
        if not c.get("deletedFlag") and c["types"] and c["types"][0]["name"] in COMPANY_TYPES
    }
    contacts = {
        str(c["id"]) for c in dataset.contacts
        if c.get("company") and str(c["company"]["id"]) in companies
        and c.get("types") and c["types"][0]["name"] in CONTACT_TYPES_IMPORTED
    }
    products = {str(p["id"]) for p in dataset.catalog if p["category"]["name"] != "Misc"}
    members = {str(m["id"]) for m in dataset.members}
    assets = {str(a["id"]) for a in dataset.configurations if str(a["company"]["id"]) in companies}
    return {"companies": companies, "contacts": contacts, "products": products, "members": members, "assets": assets}


def test_full_sync_loads_exactly_the_expected_rows(warehouse, pg_url, instance, simulator, make_tenant):
    tenant = make_tenant("acme", simulator)
    outcome = run_sync(pg_url, tenant, "full", instance=instance)
    assert outcome.success, outcome.reason

    want = expected(simulator.dataset)
    assert all(want.values()), "the small dataset must exercise every entity"
    for entity, psa_ids in want.items():
        assert set(live_rows(warehouse, entity, tenant)) == psa_ids, entity

    companies = live_rows(warehouse, "companies", tenant)
    for c in simulator.dataset.companies:
        if str(c["id"]) in companies:
            row = companies[str(c["id"])]
            assert row["hg_type"] == COMPANY_TYPES[c["types"][0]["name"]]
            assert row["name"] == c["name"] and row["id"] == record_id(tenant, "companies", str(c["id"]))
    contacts = live_rows(warehouse, "contacts", tenant)
    for c in simulator.dataset.contacts:
        if str(c["id"]) in contacts:
            row = contacts[str(c["id"])]
            assert row["company_id"] == record_id(tenant, "companies", str(c["company"]["id"]))
            assert row["invite_status"] == "not_invited"
            assert (row["first_name"], row["last_name"]) == (c["firstName"], c["lastName"])
    products = live_rows(warehouse, "products", tenant)
    laptops = [p for p in simulator.dataset.catalog
               if p["category"]["name"] == "Hardware" and (p.get("subcategory") or {}).get("name") == "Laptops"]
    assert laptops
    for p in laptops:
        assert products[str(p["id"])]["category_id"] == category_id("Hardware/End User Devices")
    assets = live_rows(warehouse, "assets", tenant)
    some = next(a for a in simulator.dataset.configurations if str(a["id"]) in assets)
    assert assets[str(some["id"])]["company_id"] == record_id(tenant, "companies", str(some["company"]["id"]))

    loaded = outcome.stages["contacts"]
    assert loaded["inserted"] == len(want["contacts"]) and loaded["soft_deleted"] == 0
    with warehouse.connect() as conn:
        run = conn.execute(select(sync_runs).where(sync_runs.c.tenant_id == tenant)).mappings().one()
    assert (run["kind"], run["status"], run["dagster_run_id"]) == ("full", "success", outcome.run_id)
    assert run["finished_at"] is not None


def test_second_sync_changes_nothing(warehouse, pg_url, instance, simulator, make_tenant):
    tenant = make_tenant("acme", simulator)
    assert run_sync(pg_url, tenant, "full", instance=instance).success
    before = {e: live_rows(warehouse, e, tenant) for e in LOADED_TABLES}
    again = run_sync(pg_url, tenant, "full", instance=instance)
    assert again.success
    for entity in LOADED_TABLES:
        meta = again.stages[entity]
        assert (meta["inserted"], meta["updated"], meta["soft_deleted"]) == (0, 0, 0), entity
        assert live_rows(warehouse, entity, tenant) == before[entity], entity


def test_records_removed_from_the_psa_are_soft_deleted(warehouse, pg_url, instance, simulator, make_tenant):
    tenant = make_tenant("acme", simulator)
    assert run_sync(pg_url, tenant, "full", instance=instance).success
    companies = live_rows(warehouse, "companies", tenant)
    gone_company = next(c for c in simulator.dataset.companies if str(c["id"]) in companies)
    gone_product = simulator.dataset.catalog[0]
    with simulator.lock:
        simulator.dataset.companies.remove(gone_company)
        simulator.dataset.catalog.remove(gone_product)
    outcome = run_sync(pg_url, tenant, "full", instance=instance)
    assert outcome.success, outcome.reason
    assert outcome.stages["companies"]["soft_deleted"] == 1
    assert str(gone_company["id"]) not in live_rows(warehouse, "companies", tenant)
    assert str(gone_product["id"]) not in live_rows(warehouse, "products", tenant)
    table = LOADED_TABLES["companies"]
    with warehouse.connect() as conn:
        row = conn.execute(select(table).where(table.c.psa_id == str(gone_company["id"]))).mappings().one()
    assert row["deleted_at"] is not None  # soft: the row is still there
    orphaned = [c for c in simulator.dataset.contacts if c["company"]["id"] == gone_company["id"]]
    assert not set(live_rows(warehouse, "contacts", tenant)) & {str(c["id"]) for c in orphaned}


def test_two_tenants_never_see_each_others_rows(warehouse, pg_url, instance, simulator, make_tenant):
    with ConnectWiseSimulator(generate("small", seed=2)) as other:
        acme = make_tenant("acme", simulator)
        globex = make_tenant("globex", other)
        assert run_sync(pg_url, acme, "full", instance=instance).success
        acme_rows = {e: live_rows(warehouse, e, acme) for e in LOADED_TABLES}
        assert run_sync(pg_url, globex, "full", instance=instance).success
        for entity in LOADED_TABLES:
            assert live_rows(warehouse, entity, acme) == acme_rows[entity], entity
        assert set(live_rows(warehouse, "companies", globex)) == expected(other.dataset)["companies"]
        names = {r["name"] for r in live_rows(warehouse, "companies", globex).values()}
        assert names == {c["name"] for c in other.dataset.companies if str(c["id"]) in expected(other.dataset)["companies"]}
        # globex's sync, now empty on the PSA side, must only soft-delete globex rows
        with other.lock:
            other.dataset.companies.clear()
        run_sync(pg_url, globex, "full", instance=instance)
        assert live_rows(warehouse, "companies", acme) == acme_rows["companies"]


def test_wrong_api_key_fails_the_run_naming_tenant_and_401(warehouse, pg_url, instance, simulator, make_tenant):
    wrong = dict(DEMO_CREDENTIALS, private_key="s3cr3t-wrong-private-key")
    tenant = make_tenant("acme", simulator, secrets=wrong)
    outcome = run_sync(pg_url, tenant, "full", instance=instance)
    assert not outcome.success
    assert "acme" in outcome.reason and "401" in outcome.reason
    assert "s3cr3t" not in outcome.reason
    logs = [r.event_log_entry for r in instance.get_records_for_run(outcome.run_id).records]
    assert not any("s3cr3t" in (entry.user_message or "") for entry in logs)
    assert not any("s3cr3t" in str(entry.dagster_event) for entry in logs if entry.dagster_event)
    with warehouse.connect() as conn:
        error = conn.scalar(select(sync_runs.c.error).where(sync_runs.c.dagster_run_id == outcome.run_id))
    assert "401" in error and "s3cr3t" not in error


def test_429_with_retry_after_is_waited_out(warehouse, pg_url, instance, simulator, make_tenant):
    tenant = make_tenant("acme", simulator)
    simulator.fail_next(2, status=429, retry_after=1)
    started = time.monotonic()
    outcome = run_sync(pg_url, tenant, "full", instance=instance)
    assert outcome.success, outcome.reason
    assert time.monotonic() - started >= 1.0
    assert set(live_rows(warehouse, "members", tenant)) == expected(simulator.dataset)["members"]


def test_unreachable_psa_fails_and_keeps_loaded_rows(warehouse, pg_url, instance, make_tenant):
    with ConnectWiseSimulator(generate("small", seed=1)) as sim:
        tenant = make_tenant("acme", sim)
        assert run_sync(pg_url, tenant, "full", instance=instance).success
    before = {e: live_rows(warehouse, e, tenant) for e in LOADED_TABLES}
    outcome = run_sync(pg_url, tenant, "full", instance=instance, psa=PsaResource(max_retries=1))  # simulator gone
    assert not outcome.success, "the sync must fail"
    print(outcome.reason)
    assert "acme" in outcome.reason and "unreachable" in outcome.reason.lower()
    for entity in LOADED_TABLES:
        assert live_rows(warehouse, entity, tenant) == before[entity]


def test_malformed_records_are_quarantined_and_the_rest_loads(warehouse, pg_url, instance, simulator, make_tenant):
    tenant = make_tenant("acme", simulator)
    with simulator.lock:
        bad = dict(simulator.dataset.catalog[1], price="twelve")
        simulator.dataset.catalog[1] = bad
    outcome = run_sync(pg_url, tenant, "full", instance=instance)
    assert outcome.success, outcome.reason
    with warehouse.connect() as conn:
        rows = conn.execute(select(quarantine).where(quarantine.c.tenant_id == tenant)).mappings().all()
    assert [(r["entity"], r["psa_id"]) for r in rows] == [("products", str(bad["id"]))]
    assert "price" in rows[0]["reason"] and rows[0]["sync_run_id"] == outcome.run_id
    assert len(live_rows(warehouse, "products", tenant)) == len(expected(simulator.dataset)["products"]) - (
        bad["category"]["name"] != "Misc")


def test_nightly_resync_fetches_only_changes_and_finds_deletions(warehouse, pg_url, instance, simulator, make_tenant):
    from datetime import datetime, timedelta, timezone

    from hg_pipeline.simulators.datasets import iso

    tenant = make_tenant("acme", simulator)
    assert run_sync(pg_url, tenant, "full", instance=instance).success
    companies = live_rows(warehouse, "companies", tenant)
    changed, gone = [c for c in simulator.dataset.companies if str(c["id"]) in companies][:2]
    with simulator.lock:
        changed["name"] = "Renamed Dental Group"
        changed["_info"] = dict(changed["_info"], lastUpdated=iso(datetime.now(timezone.utc) + timedelta(minutes=1)))
        simulator.dataset.companies.remove(gone)
    outcome = run_sync(pg_url, tenant, "nightly", instance=instance)
    assert outcome.success, outcome.reason
    assert outcome.stages["companies_raw"]["mode"] == "incremental"
    assert outcome.stages["companies_raw"]["received"] == 1
    assert outcome.stages["companies_raw"]["vanished"] == 1
    after = live_rows(warehouse, "companies", tenant)
    assert after[str(changed["id"])]["name"] == "Renamed Dental Group"
    assert str(gone["id"]) not in after
    assert outcome.stages["contacts_raw"]["received"] == 0
