"""The ConnectWise end-to-end expectations (test_full_sync.py, test_user_walk.py) held against
Autotask: its simulator serves the same dataset, so the same rows must land, except where the
simulator's vendor choices say otherwise (docs/decisions.md "Simulators": a company keeps its
first ConnectWise type; contact types and product subcategories are UDF values, so only those
some record carries are listed). Plus what only Autotask does: its thread limit."""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from hg_pipeline.ids import category_id, record_id
from hg_pipeline.orchestration.run import run_sync
from hg_pipeline.simulators.autotask import DEMO_CREDENTIALS, AutotaskSimulator
from hg_pipeline.simulators.datasets import generate, iso
from hg_pipeline.warehouse.tables import LOADED_TABLES, quarantine, sync_runs
from hg_pipeline_tests.orchestration.scenario import COMPANY_TYPES
from hg_pipeline_tests.orchestration.test_full_sync import expected, live_rows
from hg_pipeline_tests.orchestration.test_user_walk import expected_choices, read_pending


@pytest.fixture
def autotask():
    with AutotaskSimulator(generate("small", seed=1)) as simulator:
        yield simulator


def _tenant(make_tenant, simulator, tenant_id="acme", **kwargs) -> str:
    return make_tenant(tenant_id, simulator, source="autotask", **kwargs)


def test_full_sync_loads_exactly_the_expected_rows(warehouse, pg_url, instance, autotask, make_tenant):
    tenant = _tenant(make_tenant, autotask)
    outcome = run_sync(pg_url, tenant, "full", instance=instance)
    assert outcome.success, outcome.reason
    dataset = autotask.dataset
    want = expected(dataset)
    assert all(want.values())
    for entity, psa_ids in want.items():
        assert set(live_rows(warehouse, entity, tenant)) == psa_ids, entity
    companies = live_rows(warehouse, "companies", tenant)
    for c in dataset.companies:
        if str(c["id"]) in companies:
            row = companies[str(c["id"])]
            assert (row["hg_type"], row["psa_type"]) == (COMPANY_TYPES[c["types"][0]["name"]], c["types"][0]["name"])
            assert row["name"] == c["name"] and row["id"] == record_id(tenant, "companies", str(c["id"]))
    contacts = live_rows(warehouse, "contacts", tenant)
    for c in dataset.contacts:
        if str(c["id"]) in contacts:
            row = contacts[str(c["id"])]
            assert row["company_id"] == record_id(tenant, "companies", str(c["company"]["id"]))
            assert (row["first_name"], row["last_name"]) == (c["firstName"], c["lastName"])
            assert row["invite_status"] == "not_invited"
    products = live_rows(warehouse, "products", tenant)
    laptops = [p for p in dataset.catalog
               if p["category"]["name"] == "Hardware" and (p.get("subcategory") or {}).get("name") == "Laptops"]
    assert laptops and all(products[str(p["id"])]["category_id"] == category_id("Hardware/End User Devices")
                           for p in laptops)
    assets = live_rows(warehouse, "assets", tenant)
    some = next(a for a in dataset.configurations if str(a["id"]) in assets)
    assert assets[str(some["id"])]["company_id"] == record_id(tenant, "companies", str(some["company"]["id"]))
    assert outcome.stages["contacts"]["inserted"] == len(want["contacts"])
    with warehouse.connect() as conn:
        run = conn.execute(select(sync_runs).where(sync_runs.c.tenant_id == tenant)).mappings().one()
    assert (run["kind"], run["status"], run["dagster_run_id"]) == ("full", "success", outcome.run_id)


def test_second_sync_changes_nothing(warehouse, pg_url, instance, autotask, make_tenant):
    tenant = _tenant(make_tenant, autotask)
    assert run_sync(pg_url, tenant, "full", instance=instance).success
    before = {e: live_rows(warehouse, e, tenant) for e in LOADED_TABLES}
    again = run_sync(pg_url, tenant, "full", instance=instance)
    assert again.success, again.reason
    for entity in LOADED_TABLES:
        meta = again.stages[entity]
        assert (meta["inserted"], meta["updated"], meta["soft_deleted"]) == (0, 0, 0), entity
        assert live_rows(warehouse, entity, tenant) == before[entity], entity


def test_records_removed_from_the_psa_are_soft_deleted(warehouse, pg_url, instance, autotask, make_tenant):
    tenant = _tenant(make_tenant, autotask)
    assert run_sync(pg_url, tenant, "full", instance=instance).success
    companies = live_rows(warehouse, "companies", tenant)
    gone_company = next(c for c in autotask.dataset.companies if str(c["id"]) in companies)
    gone_product = autotask.dataset.catalog[0]
    with autotask.lock:
        autotask.dataset.companies.remove(gone_company)
        autotask.dataset.catalog.remove(gone_product)
    outcome = run_sync(pg_url, tenant, "full", instance=instance)
    assert outcome.success, outcome.reason
    assert outcome.stages["companies"]["soft_deleted"] == 1
    assert str(gone_company["id"]) not in live_rows(warehouse, "companies", tenant)
    assert str(gone_product["id"]) not in live_rows(warehouse, "products", tenant)
    table = LOADED_TABLES["companies"]
    with warehouse.connect() as conn:
        row = conn.execute(select(table).where(table.c.tenant_id == tenant,
                                               table.c.psa_id == str(gone_company["id"]))).mappings().one()
    assert row["deleted_at"] is not None
    orphaned = [c for c in autotask.dataset.contacts if c["company"]["id"] == gone_company["id"]]
    assert not set(live_rows(warehouse, "contacts", tenant)) & {str(c["id"]) for c in orphaned}


def test_two_tenants_never_see_each_others_rows(warehouse, pg_url, instance, autotask, make_tenant):
    with AutotaskSimulator(generate("small", seed=2)) as other:
        acme = _tenant(make_tenant, autotask)
        globex = _tenant(make_tenant, other, "globex")
        assert run_sync(pg_url, acme, "full", instance=instance).success
        acme_rows = {e: live_rows(warehouse, e, acme) for e in LOADED_TABLES}
        assert run_sync(pg_url, globex, "full", instance=instance).success
        for entity in LOADED_TABLES:
            assert live_rows(warehouse, entity, acme) == acme_rows[entity], entity
        assert set(live_rows(warehouse, "companies", globex)) == expected(other.dataset)["companies"]
        with other.lock:
            other.dataset.companies.clear()
        run_sync(pg_url, globex, "full", instance=instance)
        assert live_rows(warehouse, "companies", acme) == acme_rows["companies"]


def test_wrong_secret_fails_the_run_naming_tenant_and_401(warehouse, pg_url, instance, autotask, make_tenant):
    tenant = _tenant(make_tenant, autotask, secrets=dict(DEMO_CREDENTIALS, secret="s3cr3t-wrong-secret"))
    outcome = run_sync(pg_url, tenant, "full", instance=instance)
    assert not outcome.success
    assert "acme" in outcome.reason and "401" in outcome.reason
    logs = [r.event_log_entry for r in instance.get_records_for_run(outcome.run_id).records]
    with warehouse.connect() as conn:
        error = conn.scalar(select(sync_runs.c.error).where(sync_runs.c.dagster_run_id == outcome.run_id))
    texts = [outcome.reason, error, *(entry.user_message or "" for entry in logs),
             *(str(entry.dagster_event) for entry in logs if entry.dagster_event)]
    for secret in ("s3cr3t", DEMO_CREDENTIALS["integration_code"]):
        assert not any(secret in text for text in texts), secret
    assert "401" in error


def test_429_with_retry_after_is_waited_out(warehouse, pg_url, instance, autotask, make_tenant):
    tenant = _tenant(make_tenant, autotask)
    autotask.fail_next(2, status=429, retry_after=1)
    started = time.monotonic()
    outcome = run_sync(pg_url, tenant, "full", instance=instance)
    assert outcome.success, outcome.reason
    assert time.monotonic() - started >= 1.0
    assert set(live_rows(warehouse, "members", tenant)) == expected(autotask.dataset)["members"]


def test_thread_limit_rejections_are_waited_out(warehouse, pg_url, instance, autotask, make_tenant):
    tenant = _tenant(make_tenant, autotask)
    # One thread per entity, and slow answers: the run's concurrent steps on one entity (a
    # reference list and its records) are turned away, with a status that is no 429.
    autotask.thread_limit, autotask.thread_limit_status, autotask.latency = 1, 400, 0.05
    outcome = run_sync(pg_url, tenant, "full", instance=instance)
    assert outcome.success, outcome.reason
    for entity, psa_ids in expected(autotask.dataset).items():
        assert set(live_rows(warehouse, entity, tenant)) == psa_ids, entity


def test_malformed_records_are_quarantined_and_the_rest_loads(warehouse, pg_url, instance, autotask, make_tenant):
    tenant = _tenant(make_tenant, autotask)
    with autotask.lock:
        bad = dict(autotask.dataset.catalog[1], price="twelve")
        autotask.dataset.catalog[1] = bad
    outcome = run_sync(pg_url, tenant, "full", instance=instance)
    assert outcome.success, outcome.reason
    with warehouse.connect() as conn:
        rows = conn.execute(select(quarantine).where(quarantine.c.tenant_id == tenant)).mappings().all()
    assert [(r["entity"], r["psa_id"]) for r in rows] == [("products", str(bad["id"]))]
    assert "unitPrice" in rows[0]["reason"] and rows[0]["sync_run_id"] == outcome.run_id
    assert len(live_rows(warehouse, "products", tenant)) == len(expected(autotask.dataset)["products"]) - (
        bad["category"]["name"] != "Misc")


def test_nightly_resync_stages_only_changes_and_finds_deletions(warehouse, pg_url, instance, autotask, make_tenant):
    tenant = _tenant(make_tenant, autotask)
    assert run_sync(pg_url, tenant, "full", instance=instance).success
    companies = live_rows(warehouse, "companies", tenant)
    changed, gone = [c for c in autotask.dataset.companies if str(c["id"]) in companies][:2]
    with autotask.lock:
        changed["name"] = "Renamed Dental Group"
        changed["_info"] = dict(changed["_info"], lastUpdated=iso(datetime.now(timezone.utc) + timedelta(minutes=1)))
        autotask.dataset.companies.remove(gone)
    outcome = run_sync(pg_url, tenant, "nightly", instance=instance)
    assert outcome.success, outcome.reason
    raw = outcome.stages["companies_raw"]
    assert (raw["mode"], raw["received"], raw["vanished"]) == ("incremental", 1, 1)
    after = live_rows(warehouse, "companies", tenant)
    assert after[str(changed["id"])]["name"] == "Renamed Dental Group" and str(gone["id"]) not in after
    assert outcome.stages["contacts_raw"]["received"] == 0
    assert outcome.stages["products_raw"]["mode"] == "full"  # no modified field on Products


def _expected_choices(dataset) -> dict[str, dict[str, int]]:
    """test_user_walk's choices as Autotask lists them: a company or contact counts under its
    first type only; contact types and subcategories (UDF values) are listed only when some
    record carries them."""
    choices = expected_choices(dataset)
    first_types = Counter(c["types"][0]["name"] for c in dataset.companies if c["types"] and not c.get("deletedFlag"))
    choices["company types"] = {t["name"]: first_types[t["name"]] for t in dataset.company_types}
    categories = {c["name"] for c in dataset.categories}
    first_contact_types = Counter(c["types"][0]["name"] for c in dataset.contacts if c["types"])
    choices["contact types"] = {name: first_contact_types[name] if name != "(no type)" else n
                                for name, n in choices["contact types"].items()
                                if first_contact_types[name] or name == "(no type)"}
    choices["product categories"] = {name: n for name, n in choices["product categories"].items()
                                     if n or name in categories}
    return choices


def test_a_new_msp_maps_after_the_initial_sync(pg_url, warehouse, monkeypatch, tmp_path, capsys, autotask):
    from hg_pipeline.cli import main

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    (tmp_path / "dagster").mkdir()

    def cli(*args: str) -> str:
        code = main([*args, "--database-url", pg_url])
        out, err = capsys.readouterr()
        assert code == 0, (args, err)
        return out

    credentials = []
    for key, value in DEMO_CREDENTIALS.items():
        monkeypatch.setenv(f"WALK_AT_{key.upper()}", value)
        credentials += ["--credential", f"{key}=env:WALK_AT_{key.upper()}"]
    cli("tenant", "add", "acme", "--source", "autotask", "--base-url", autotask.base_url, *credentials,
        "--name", "Acme IT", "--notify-email", "ops@acme.example")
    dataset = autotask.dataset
    expected_types = _expected_choices(dataset)
    types_waiting = sum(len(names) for names in expected_types.values())
    records_waiting = len(dataset.companies) + len(dataset.contacts) + len(dataset.catalog)

    out = cli("sync", "acme", "--initial")
    assert "initial sync of acme: success" in out
    assert f"tenant acme: {types_waiting} types and categories and {records_waiting} records wait" in out
    _, choices, pending = read_pending(cli("mapping", "pending", "acme"))
    assert choices == expected_types
    assert pending == {"companies": len(dataset.companies), "contacts": len(dataset.contacts),
                       "products": len(dataset.catalog)}

    path = tmp_path / "mapping.yaml"
    path.write_text(cli("mapping", "template", "acme"))
    assert "mapping version 1 stored" in cli("mapping", "import", "acme", str(path))
    assert read_pending(cli("mapping", "pending", "acme"))[1] == {}
    assert "full sync of acme: success" in cli("sync", "acme", "--full")
    assert cli("mapping", "pending", "acme") == "tenant acme: nothing waits for a decision (mapping version 1)\n"
