"""The ConnectWise end-to-end expectations (test_full_sync.py, test_user_walk.py) held against
the other sources: their simulators serve the same dataset, so the same rows must land,
except where a simulator's vendor choices say otherwise (docs/decisions.md "Simulators": a
company of several ConnectWise types keeps its first; HaloPSA lists device types among the
asset types, so they are product subcategories too, with no product; Autotask's contact types
and product subcategories are UDF values, listed only as records carry them, and a contact
keeps its first type; Autotask's products include its services, PSA category "Services").
Autotask's own limits: test_autotask_sync.py."""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from hg_pipeline.connectors.registry import source as source_spec
from hg_pipeline.ids import category_id, record_id
from hg_pipeline.orchestration.run import run_sync
from hg_pipeline.simulators.autotask_billing import service_id
from hg_pipeline.simulators.datasets import generate, iso
from hg_pipeline.warehouse.tables import LOADED_TABLES, quarantine, sync_runs
from hg_pipeline_tests.orchestration.scenario import COMPANY_TYPES
from hg_pipeline_tests.orchestration.test_autotask_sync import autotask_expected, services
from hg_pipeline_tests.orchestration.test_full_sync import expected, live_rows
from hg_pipeline_tests.orchestration.test_user_walk import expected_choices, read_pending

SOURCES = ["halopsa", "autotask"]
SECRET_KEY = {"halopsa": "client_secret", "autotask": "secret"}  # the credential a wrong value of which makes a 401


@pytest.fixture(params=SOURCES)
def psa(request):
    """(source name, a running simulator of it on the small dataset, seed 1)."""
    with source_spec(request.param).simulator_class()(generate("small", seed=1)) as simulator:
        yield request.param, simulator


def _expected(name, dataset) -> dict[str, set[str]]:
    return autotask_expected(dataset) if name == "autotask" else expected(dataset)


def _tenant(make_tenant, psa, tenant_id="acme", **kwargs):
    name, simulator = psa
    return make_tenant(tenant_id, simulator, source=name, **kwargs)


def test_full_sync_loads_exactly_the_expected_rows(warehouse, pg_url, instance, psa, make_tenant):
    name, simulator = psa
    tenant = _tenant(make_tenant, psa)
    outcome = run_sync(pg_url, tenant, "full", instance=instance)
    assert outcome.success, outcome.reason
    dataset = simulator.dataset
    want = _expected(name, dataset)
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
    products = live_rows(warehouse, "products", tenant)
    laptops = [p for p in dataset.catalog
               if p["category"]["name"] == "Hardware" and (p.get("subcategory") or {}).get("name") == "Laptops"]
    assert laptops and all(products[str(p["id"])]["category_id"] == category_id("Hardware/End User Devices")
                           for p in laptops)
    assets = live_rows(warehouse, "assets", tenant)
    some = next(a for a in dataset.configurations if str(a["id"]) in assets)
    assert assets[str(some["id"])]["company_id"] == record_id(tenant, "companies", str(some["company"]["id"]))
    with warehouse.connect() as conn:
        run = conn.execute(select(sync_runs).where(sync_runs.c.tenant_id == tenant)).mappings().one()
    assert (run["kind"], run["status"]) == ("full", "success")


def test_second_sync_changes_nothing(warehouse, pg_url, instance, psa, make_tenant):
    tenant = _tenant(make_tenant, psa)
    assert run_sync(pg_url, tenant, "full", instance=instance).success
    before = {e: live_rows(warehouse, e, tenant) for e in LOADED_TABLES}
    again = run_sync(pg_url, tenant, "full", instance=instance)
    assert again.success, again.reason
    for entity in LOADED_TABLES:
        meta = again.stages[entity]
        assert (meta["inserted"], meta["updated"], meta["soft_deleted"]) == (0, 0, 0), entity
        assert live_rows(warehouse, entity, tenant) == before[entity], entity


def test_records_removed_from_the_psa_are_soft_deleted(warehouse, pg_url, instance, psa, make_tenant):
    _, simulator = psa
    tenant = _tenant(make_tenant, psa)
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
    assert row["deleted_at"] is not None


def test_two_tenants_never_see_each_others_rows(warehouse, pg_url, instance, psa, make_tenant):
    name, simulator = psa
    with source_spec(name).simulator_class()(generate("small", seed=2)) as other:
        acme = _tenant(make_tenant, psa)
        globex = make_tenant("globex", other, source=name)
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


def _no_secret_anywhere(warehouse, instance, outcome, secrets):
    logs = [r.event_log_entry for r in instance.get_records_for_run(outcome.run_id).records]
    with warehouse.connect() as conn:
        error = conn.scalar(select(sync_runs.c.error).where(sync_runs.c.dagster_run_id == outcome.run_id))
    texts = [outcome.reason, error, *(entry.user_message or "" for entry in logs),
             *(str(entry.dagster_event) for entry in logs if entry.dagster_event)]
    for secret in secrets:
        assert not any(secret in text for text in texts), secret
    return error


def test_wrong_secret_fails_the_run_naming_tenant_and_401(warehouse, pg_url, instance, psa, make_tenant):
    name, simulator = psa
    wrong = dict(source_spec(name).simulator_module().DEMO_CREDENTIALS, **{SECRET_KEY[name]: "s3cr3t-wrong-secret"})
    tenant = _tenant(make_tenant, psa, secrets=wrong)
    outcome = run_sync(pg_url, tenant, "full", instance=instance)
    assert not outcome.success
    assert "acme" in outcome.reason and "401" in outcome.reason
    error = _no_secret_anywhere(warehouse, instance, outcome, ["s3cr3t"])
    assert "401" in error


def test_a_failed_run_shows_neither_the_token_nor_the_secret(warehouse, pg_url, instance, psa, make_tenant):
    name, simulator = psa
    tenant = _tenant(make_tenant, psa)
    simulator.fail_next(1, 403)  # after the token was fetched: the token is never gated
    outcome = run_sync(pg_url, tenant, "full", instance=instance)
    assert not outcome.success and "403" in outcome.reason
    tokens = list(getattr(simulator, "_tokens", ()))  # HaloPSA: what it issued, sent on every request
    assert tokens or name != "halopsa"
    _no_secret_anywhere(warehouse, instance, outcome,
                        [*tokens, source_spec(name).simulator_module().DEMO_CREDENTIALS[SECRET_KEY[name]]])


def test_429_with_retry_after_is_waited_out(warehouse, pg_url, instance, psa, make_tenant):
    _, simulator = psa
    tenant = _tenant(make_tenant, psa)
    simulator.fail_next(2, status=429, retry_after=1)
    started = time.monotonic()
    outcome = run_sync(pg_url, tenant, "full", instance=instance)
    assert outcome.success, outcome.reason
    assert time.monotonic() - started >= 1.0
    assert set(live_rows(warehouse, "members", tenant)) == expected(simulator.dataset)["members"]


def test_malformed_records_are_quarantined_and_the_rest_loads(warehouse, pg_url, instance, psa, make_tenant):
    name, simulator = psa
    tenant = _tenant(make_tenant, psa)
    with simulator.lock:
        bad = dict(simulator.dataset.catalog[1], price="twelve")
        simulator.dataset.catalog[1] = bad
    outcome = run_sync(pg_url, tenant, "full", instance=instance)
    assert outcome.success, outcome.reason
    with warehouse.connect() as conn:
        rows = conn.execute(select(quarantine).where(quarantine.c.tenant_id == tenant)).mappings().all()
    refused = [("products", str(bad["id"]))]
    if name == "autotask" and bad.get("recurringFlag"):  # its service has the same unit price
        refused.append(("products", f"svc-{service_id(bad['id'])}"))
    assert [(r["entity"], r["psa_id"]) for r in rows] == refused
    assert all("price" in r["reason"].lower() and r["sync_run_id"] == outcome.run_id for r in rows)  # or unitPrice
    assert len(live_rows(warehouse, "products", tenant)) == len(_expected(name, simulator.dataset)["products"]) - (
        bad["category"]["name"] != "Misc") - (len(refused) - 1)


def test_nightly_resync_stages_only_changes_and_finds_deletions(warehouse, pg_url, instance, psa, make_tenant):
    _, simulator = psa
    tenant = _tenant(make_tenant, psa)
    assert run_sync(pg_url, tenant, "full", instance=instance).success
    companies = live_rows(warehouse, "companies", tenant)
    changed, gone = [c for c in simulator.dataset.companies if str(c["id"]) in companies][:2]
    with simulator.lock:
        changed["name"] = "Renamed Dental Group"
        changed["_info"] = dict(changed["_info"], lastUpdated=iso(datetime.now(timezone.utc) + timedelta(minutes=1)))
        simulator.dataset.companies.remove(gone)
    outcome = run_sync(pg_url, tenant, "nightly", instance=instance)
    assert outcome.success, outcome.reason
    raw = outcome.stages["companies_raw"]
    assert (raw["mode"], raw["received"], raw["vanished"]) == ("incremental", 1, 1)
    after = live_rows(warehouse, "companies", tenant)
    assert after[str(changed["id"])]["name"] == "Renamed Dental Group" and str(gone["id"]) not in after
    assert outcome.stages["contacts_raw"]["received"] == 0


def _expected_choices(name, simulator) -> dict[str, dict[str, int]]:
    """test_user_walk's choices, as this source lists them."""
    dataset = simulator.dataset
    choices = expected_choices(dataset)
    first_types = Counter(c["types"][0]["name"] for c in dataset.companies if c["types"] and not c.get("deletedFlag"))
    choices["company types"] = {t["name"]: first_types[t["name"]] for t in dataset.company_types}
    if name == "halopsa":  # device types are asset types as well: subcategories with no item
        for kind in simulator._asset_types():
            choices["product categories"].setdefault(f"{kind['assetgroup_name']}/{kind['name']}", 0)
    if name == "autotask":  # UDF values: a contact's first type; only what some record carries
        first_contact_types = Counter(c["types"][0]["name"] for c in dataset.contacts if c["types"])
        choices["contact types"] = {type_name: first_contact_types[type_name] if type_name != "(no type)" else n
                                    for type_name, n in choices["contact types"].items()
                                    if first_contact_types[type_name] or type_name == "(no type)"}
        categories = {c["name"] for c in dataset.categories}
        choices["product categories"] = {path: n for path, n in choices["product categories"].items()
                                         if n or path in categories}
        choices["product categories"]["Services"] = len(services(dataset))
    return choices


def test_a_new_msp_maps_after_the_initial_sync(pg_url, warehouse, monkeypatch, tmp_path, capsys, psa):
    from hg_pipeline.cli import main

    name, simulator = psa
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    (tmp_path / "dagster").mkdir()

    def cli(*args: str) -> str:
        code = main([*args, "--database-url", pg_url])
        out, err = capsys.readouterr()
        assert code == 0, (args, err)
        return out

    credentials = []
    for key, value in source_spec(name).simulator_module().DEMO_CREDENTIALS.items():
        monkeypatch.setenv(f"WALK_{name.upper()}_{key.upper()}", value)
        credentials += ["--credential", f"{key}=env:WALK_{name.upper()}_{key.upper()}"]
    cli("tenant", "add", "acme", "--source", name, "--base-url", simulator.base_url, *credentials,
        "--name", "Acme IT", "--notify-email", "ops@acme.example", "--requests-per-second", "500")
    dataset = simulator.dataset
    expected_types = _expected_choices(name, simulator)
    types_waiting = sum(len(names) for names in expected_types.values())
    products_waiting = len(dataset.catalog) + (len(services(dataset)) if name == "autotask" else 0)
    records_waiting = len(dataset.companies) + len(dataset.contacts) + products_waiting

    out = cli("sync", "acme", "--initial")
    assert "initial sync of acme: success" in out
    assert f"tenant acme: {types_waiting} types and categories and {records_waiting} records wait" in out
    _, choices, pending = read_pending(cli("mapping", "pending", "acme"))
    assert choices == expected_types
    assert pending == {"companies": len(dataset.companies), "contacts": len(dataset.contacts),
                       "products": products_waiting}

    template = cli("mapping", "template", "acme")
    path = tmp_path / "mapping.yaml"
    path.write_text(template)
    assert "mapping version 1 stored" in cli("mapping", "import", "acme", str(path))
    assert read_pending(cli("mapping", "pending", "acme"))[1] == {}
    assert "full sync of acme: success" in cli("sync", "acme", "--full")
    assert cli("mapping", "pending", "acme") == "tenant acme: nothing waits for a decision (mapping version 1)\n"
