"""The nightly, remaps and full syncs map and load only what changed (mapping_stage.py, "delta"),
and end exactly where a whole map would: a reconcile right after finds nothing to change."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from hg_pipeline.cli import format_outcome
from hg_pipeline.orchestration.mapping_stage import read_worklist
from hg_pipeline.orchestration.run import run_sync
from hg_pipeline.simulators.datasets import iso
from hg_pipeline.warehouse.mappings import store_mapping
from hg_pipeline.warehouse.tables import LOADED_TABLES, mapping_decisions
from hg_pipeline_tests.orchestration.scenario import TEST_MAPPING
from hg_pipeline_tests.orchestration.test_full_sync import live_rows

DELTA = ("contacts", "products", "members", "assets")


def _decisions(engine, tenant_id: str) -> set[tuple]:
    t = mapping_decisions
    with engine.connect() as conn:
        return set(conn.execute(select(t.c.entity, t.c.psa_id, t.c.outcome, t.c.rule, t.c.reason, t.c.group_key,
                                       t.c.mapping_version).where(t.c.tenant_id == tenant_id)).all())


def _all_rows(engine, tenant_id: str) -> dict[str, set[tuple]]:
    """Every row of every loaded table, deleted ones too, without the bookkeeping times."""
    out = {}
    with engine.connect() as conn:
        for entity, table in LOADED_TABLES.items():
            columns = [c for c in table.c if c.name not in ("created_at", "updated_at", "deleted_at")]
            rows = conn.execute(select(*columns, table.c.deleted_at.is_(None)).where(table.c.tenant_id == tenant_id))
            out[entity] = set(map(tuple, rows))
    return out


def _spend_rows(engine, tenant_id: str) -> set[tuple]:
    from hg_pipeline.warehouse.tables import spend, spend_unmapped

    with engine.connect() as conn:
        return {(table.name, *row[1:]) for table in (spend, spend_unmapped)
                for row in conn.execute(select(table).where(table.c.tenant_id == tenant_id))}


def _now_plus(minutes: int = 1) -> str:
    return iso(datetime.now(timezone.utc) + timedelta(minutes=minutes))


def test_the_nightly_maps_only_what_changed_and_ends_where_a_whole_map_would(
        warehouse, pg_url, instance, simulator, make_tenant):
    tenant = make_tenant("acme", simulator)
    assert run_sync(pg_url, tenant, "full", instance=instance).success
    changed = simulator.touch(0.05, seed=3)
    loaded_assets = live_rows(warehouse, "assets", tenant)
    gone = next(c for c in simulator.dataset.configurations if str(c["id"]) in loaded_assets)
    with simulator.lock:
        simulator.dataset.configurations.remove(gone)

    nightly = run_sync(pg_url, tenant, "nightly", instance=instance)
    assert nightly.success, nightly.reason
    for entity in DELTA:
        assert nightly.stages[f"{entity}_mapped"]["mode"] == "delta", entity
    assert nightly.stages["contacts_mapped"]["remapped"] == changed["contacts"]
    assert nightly.stages["assets_mapped"]["remapped"] == changed["configurations"] + 1  # the gone one
    assert nightly.stages["members_mapped"]["remapped"] == nightly.stages["products_mapped"]["remapped"] == 0
    assert nightly.stages["companies_mapped"]["mode"] == "whole"  # contacts and assets read all of it
    # the stage's figures are the entity's, not the delta's
    assert nightly.stages["contacts_mapped"]["records"] == len(simulator.dataset.contacts)
    assert nightly.stages["assets"]["soft_deleted"] == 1
    assert str(gone["id"]) not in live_rows(warehouse, "assets", tenant)
    assert nightly.stages["assets"]["rows"] == len(loaded_assets) - 1
    edited = [c for c in simulator.dataset.contacts if " (edit " in (c.get("lastName") or "")]
    contacts = live_rows(warehouse, "contacts", tenant)
    assert edited and all(contacts[str(c["id"])]["last_name"] == c["lastName"]
                          for c in edited if str(c["id"]) in contacts)

    # companies renamed, contacts and assets changed: nothing spend reads (the gone asset is no product)
    assert nightly.stages["spend_mapped"]["mode"].startswith("unchanged")
    assert nightly.stages["spend"]["mode"] == "unchanged" and nightly.stages["spend"]["rows"] > 0

    rows, decisions, spent = _all_rows(warehouse, tenant), _decisions(warehouse, tenant), _spend_rows(warehouse, tenant)
    whole = run_sync(pg_url, tenant, "full", instance=instance, reconcile=True)
    assert whole.success, whole.reason
    for entity in LOADED_TABLES:
        meta = whole.stages[entity]
        assert (meta["inserted"], meta["updated"], meta["soft_deleted"], meta["unlinked"]) == (0, 0, 0, 0), entity
    assert _all_rows(warehouse, tenant) == rows
    assert _decisions(warehouse, tenant) == decisions
    assert whole.stages["spend"]["mode"] == "replaced" and _spend_rows(warehouse, tenant) == spent


def test_a_full_sync_maps_what_changed_and_a_reconcile_maps_every_record(
        warehouse, pg_url, instance, simulator, make_tenant):
    tenant = make_tenant("acme", simulator)
    first = run_sync(pg_url, tenant, "full", instance=instance)
    assert first.success, first.reason
    assert all(first.stages[f"{entity}_mapped"]["mode"] == "whole" for entity in DELTA)  # nothing loaded before
    again = run_sync(pg_url, tenant, "full", instance=instance)
    assert again.success, again.reason
    for entity in DELTA:
        assert (again.stages[f"{entity}_mapped"]["mode"], again.stages[f"{entity}_mapped"]["remapped"]) == (
            "delta", 0), entity
    changed = simulator.touch(0.05, seed=4)
    full = run_sync(pg_url, tenant, "full", instance=instance)
    assert full.success, full.reason
    assert full.stages["contacts_mapped"]["mode"] == full.stages["assets_mapped"]["mode"] == "delta"
    assert full.stages["contacts_mapped"]["remapped"] == changed["contacts"]
    assert full.stages["assets_mapped"]["remapped"] == changed["configurations"]
    assert full.stages["contacts"]["updated"] > 0

    rows, decisions, spent = _all_rows(warehouse, tenant), _decisions(warehouse, tenant), _spend_rows(warehouse, tenant)
    reconcile = run_sync(pg_url, tenant, "full", instance=instance, reconcile=True)
    assert reconcile.success, reconcile.reason
    for entity in DELTA:
        assert reconcile.stages[f"{entity}_mapped"]["mode"] == "whole", entity
        assert reconcile.stages[f"{entity}_mapped"]["remapped"] == reconcile.stages[f"{entity}_mapped"]["records"]
    for entity in LOADED_TABLES:
        meta = reconcile.stages[entity]
        assert (meta["inserted"], meta["updated"], meta["soft_deleted"], meta["unlinked"]) == (0, 0, 0, 0), entity
    assert _all_rows(warehouse, tenant) == rows
    assert _decisions(warehouse, tenant) == decisions
    assert _spend_rows(warehouse, tenant) == spent


def test_a_nightly_with_nothing_changed_maps_nothing_and_writes_nothing(
        warehouse, pg_url, instance, simulator, make_tenant):
    tenant = make_tenant("acme", simulator)
    assert run_sync(pg_url, tenant, "full", instance=instance).success
    rows = _all_rows(warehouse, tenant)
    nightly = run_sync(pg_url, tenant, "nightly", instance=instance)
    assert nightly.success, nightly.reason
    summary = format_outcome(nightly)  # what `hg-pipeline sync --nightly` prints
    contacts_line = next(line for line in summary.splitlines() if line.strip().startswith("contacts "))
    assert contacts_line.split()[1:4] == ["0", "0", str(nightly.stages["contacts_mapped"]["mapped"])]
    assert "spend: not read (unchanged in the PSA), " in summary
    for entity in DELTA:
        assert (nightly.stages[f"{entity}_mapped"]["mode"], nightly.stages[f"{entity}_mapped"]["remapped"]) == (
            "delta", 0), entity
        meta = nightly.stages[entity]
        assert (meta["inserted"], meta["updated"], meta["soft_deleted"]) == (0, 0, 0), entity
    assert _all_rows(warehouse, tenant) == rows


def test_a_new_version_with_the_same_rules_takes_its_number_without_a_whole_map(
        warehouse, pg_url, instance, simulator, make_tenant):
    tenant = make_tenant("acme", simulator)
    assert run_sync(pg_url, tenant, "full", instance=instance).success
    version = store_mapping(warehouse, tenant, TEST_MAPPING + "# reviewed again\n").version
    nightly = run_sync(pg_url, tenant, "nightly", instance=instance)
    assert nightly.success, nightly.reason
    for entity in DELTA:
        assert (nightly.stages[f"{entity}_mapped"]["mode"], nightly.stages[f"{entity}_mapped"]["remapped"]) == (
            "delta", 0), entity
    # the decisions keep the number they were made with; `mapping pending` counts them as the new one's
    assert {d[6] for d in _decisions(warehouse, tenant) if d[0] in DELTA} == {version - 1}
    assert read_worklist(warehouse, tenant).decided_with == {version}


def test_a_remap_maps_only_the_sections_that_changed(warehouse, pg_url, instance, simulator, make_tenant):
    """Products rules changed (Misc imported, not ignored): products are mapped whole, the
    others are not run at all (no decision of theirs can change); the result is a whole map's
    (a reconcile right after changes nothing)."""
    tenant = make_tenant("acme", simulator)
    assert run_sync(pg_url, tenant, "full", instance=instance).success
    before = live_rows(warehouse, "products", tenant)
    version = store_mapping(warehouse, tenant, TEST_MAPPING.replace('"Misc": {action: ignore}',
                                                                    '"Misc": {action: import}')).version
    remap = run_sync(pg_url, tenant, "remap", instance=instance)
    assert remap.success, remap.reason
    assert (remap.reach.entities, remap.reach.inputs) == (("products",), ())
    assert remap.reach.left == ("companies", "contacts", "members", "assets")
    assert {name for name in remap.stages if not name.startswith("spend")} == {"products_mapped", "products"}
    assert "left as loaded (the mapping change reaches none of their decisions): companies, contacts, members, " \
           "assets" in format_outcome(remap)
    assert run_sync(pg_url, tenant, "remap", instance=instance).reach.entities == ()  # applied: nothing left to do
    misc = {str(p["id"]) for p in simulator.dataset.catalog if p["category"]["name"] == "Misc"}
    assert misc and misc <= set(live_rows(warehouse, "products", tenant)) and not misc & set(before)
    assert remap.stages["spend_mapped"]["mode"] == "derived"  # products moved: spend follows
    assert {d[6] for d in _decisions(warehouse, tenant) if d[0] == "products"} == {version}
    assert read_worklist(warehouse, tenant).decided_with == {version}

    rows, decisions, spent = _all_rows(warehouse, tenant), _decisions(warehouse, tenant), _spend_rows(warehouse, tenant)
    whole = run_sync(pg_url, tenant, "full", instance=instance, reconcile=True)
    assert whole.success, whole.reason
    assert _all_rows(warehouse, tenant) == rows and _spend_rows(warehouse, tenant) == spent
    # the same decisions, now all numbered with the version in force
    assert _decisions(warehouse, tenant) == {(*d[:6], version) for d in decisions}


def test_a_version_change_maps_whole_where_new_records_wait_for_review(
        warehouse, pg_url, instance, simulator, make_tenant):
    """contacts.auto_import_new false: which contacts are "new" depends on when the version in
    force was stored, so a new version maps contacts whole even with the same rules."""
    strict = TEST_MAPPING.replace("contacts:\n  enabled: true", "contacts:\n  enabled: true\n  auto_import_new: false")
    tenant = make_tenant("acme", simulator, mapping=strict)
    assert run_sync(pg_url, tenant, "full", instance=instance).success
    store_mapping(warehouse, tenant, strict + "# again\n")
    remap = run_sync(pg_url, tenant, "remap", instance=instance)
    assert remap.success, remap.reason
    assert remap.stages["contacts_mapped"]["mode"] == "whole"
    # the companies are the contacts' input, mapped but not loaded (their rows cannot change)
    assert (remap.reach.entities, remap.reach.inputs) == (("contacts",), ("companies",))
    assert "companies_mapped" in remap.stages and "companies" not in remap.stages and "assets_mapped" not in remap.stages
    rows = _all_rows(warehouse, tenant)
    again = run_sync(pg_url, tenant, "remap", instance=instance)  # the assets are not made to look stale
    assert again.success and again.reach.entities == ()
    assert run_sync(pg_url, tenant, "full", instance=instance, reconcile=True).success
    assert _all_rows(warehouse, tenant) == rows


def test_a_remap_follows_companies_loaded_without_their_contacts(warehouse, pg_url, instance, simulator,
                                                                 make_tenant):
    """Companies materialized alone (as from the UI) under a version that ignores a company
    type: the contacts and assets loaded before them read the old decisions, so the next remap
    maps them again, though their own rules and records did not change."""
    from dagster import AssetKey

    from hg_pipeline.definitions import build_definitions
    from hg_pipeline.orchestration.resources import psa_resource, warehouse_resource

    tenant = make_tenant("acme", simulator)
    assert run_sync(pg_url, tenant, "full", instance=instance).success
    contacts = live_rows(warehouse, "contacts", tenant)
    store_mapping(warehouse, tenant, TEST_MAPPING.replace("Partner: supplier", "Partner: ignore"))
    defs = build_definitions({"warehouse": warehouse_resource(pg_url), "psa": psa_resource()})
    alone = defs.resolve_job_def("remap").execute_in_process(
        instance=instance, partition_key=tenant, asset_selection=[AssetKey("companies_mapped"), AssetKey("companies")],
        run_config={"ops": {"companies_mapped": {"config": {"incremental": True}}}})
    assert alone.success
    assert live_rows(warehouse, "contacts", tenant) == contacts  # not yet
    remap = run_sync(pg_url, tenant, "remap", instance=instance)
    assert remap.success, remap.reason
    assert remap.reach.entities == ("contacts", "assets") and remap.reach.inputs == ("companies",)
    partners = {c["id"] for c in simulator.dataset.companies if c["types"][0]["name"] == "Partner"}
    theirs = {str(c["id"]) for c in simulator.dataset.contacts if c["company"]["id"] in partners}
    assert theirs & set(contacts) and not theirs & set(live_rows(warehouse, "contacts", tenant))


def test_a_company_whose_decision_changes_takes_its_contacts_along(warehouse, pg_url, instance, simulator,
                                                                   make_tenant):
    """A company turned Competitor (ignored): its contacts and assets leave, though their own
    records did not change (the company decisions they read changed: mapped whole)."""
    tenant = make_tenant("acme", simulator)
    assert run_sync(pg_url, tenant, "full", instance=instance).success
    contacts = live_rows(warehouse, "contacts", tenant)
    company_psa_id = next(c["company"]["id"] for c in simulator.dataset.contacts if str(c["id"]) in contacts)
    company = next(c for c in simulator.dataset.companies if c["id"] == company_psa_id)
    with simulator.lock:
        company["types"] = [{"id": 99, "name": "Competitor"}]
        company["_info"] = dict(company["_info"], lastUpdated=_now_plus())
    nightly = run_sync(pg_url, tenant, "nightly", instance=instance)
    assert nightly.success, nightly.reason
    assert nightly.stages["contacts_mapped"]["mode"] == "whole"
    assert nightly.stages["assets_mapped"]["mode"] == "whole"
    kept = live_rows(warehouse, "contacts", tenant)
    theirs = {str(c["id"]) for c in simulator.dataset.contacts if c["company"]["id"] == company_psa_id}
    assert theirs and theirs & set(contacts) and not theirs & set(kept)
    assert nightly.stages["contacts"]["soft_deleted"] == len(theirs & set(contacts))


BUNDLE_MAPPING = TEST_MAPPING.replace("members: {enabled: true}", """\
  distributions:
    "MSP-BUNDLE-150":
      - {to: "Security/Endpoint Protection", pct: 60}
      - {to: "Security/Email Security", pct: 40}
members: {enabled: true}""")


def _distributions(engine, tenant_id: str) -> set[tuple]:
    from hg_pipeline.warehouse.tables import product_distributions as t

    with engine.connect() as conn:
        return set(conn.execute(select(t.c.product_id, t.c.category_id, t.c.pct).where(t.c.tenant_id == tenant_id)))


def test_products_delta_keeps_the_other_products_distributions(warehouse, pg_url, instance, simulator, make_tenant):
    tenant = make_tenant("acme", simulator, mapping=BUNDLE_MAPPING)
    assert run_sync(pg_url, tenant, "full", instance=instance).success
    distributions = _distributions(warehouse, tenant)
    assert len(distributions) == 2
    products = live_rows(warehouse, "products", tenant)
    bundle = next(p for p in simulator.dataset.catalog if p["identifier"] == "MSP-BUNDLE-150")
    dropped = next(p for p in simulator.dataset.catalog
                   if str(p["id"]) in products and p["category"]["name"] == "Hardware")
    misc = next(c for c in simulator.dataset.categories if c["name"] == "Misc")
    with simulator.lock:
        bundle["price"] = 175.0
        bundle["_info"] = dict(bundle["_info"], lastUpdated=_now_plus())
        dropped["category"] = {"id": misc["id"], "name": "Misc"}  # ignored by the mapping: its row leaves
        dropped.pop("subcategory", None)
        dropped["_info"] = dict(dropped["_info"], lastUpdated=_now_plus())

    nightly = run_sync(pg_url, tenant, "nightly", instance=instance)
    assert nightly.success, nightly.reason
    assert (nightly.stages["products_mapped"]["mode"], nightly.stages["products_mapped"]["remapped"]) == ("delta", 2)
    after = live_rows(warehouse, "products", tenant)
    assert after[str(bundle["id"])]["price"] == 175.0 and str(dropped["id"]) not in after
    assert nightly.stages["products"]["soft_deleted"] == 1
    assert _distributions(warehouse, tenant) == distributions  # the bundle's, written again; no other lost
    assert nightly.stages["spend_mapped"]["mode"] == "derived"  # a product left: its spend is kept apart now

    rows = _all_rows(warehouse, tenant)
    whole = run_sync(pg_url, tenant, "full", instance=instance, reconcile=True)
    assert whole.success, whole.reason
    assert _all_rows(warehouse, tenant) == rows and _distributions(warehouse, tenant) == distributions


def test_the_embedded_database_maps_a_delta_too(tmp_path, instance, simulator, monkeypatch):
    """SQLite (the demo's warehouse) keeps staging times as text: the mark must compare as
    the same moment, or every record staged with it would count as changed."""
    from hg_pipeline.simulators.connectwise import DEMO_CREDENTIALS
    from hg_pipeline.warehouse import db
    from hg_pipeline.warehouse.schema import upgrade
    from hg_pipeline.warehouse.tenants import Tenant, add_tenant

    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    engine = db.connect(url)
    upgrade(engine)
    refs = {}
    for key, value in DEMO_CREDENTIALS.items():
        monkeypatch.setenv(f"HG_SQLITE_{key.upper()}", value)
        refs[key] = f"env:HG_SQLITE_{key.upper()}"
    add_tenant(engine, Tenant("acme", "Acme", "connectwise", simulator.base_url, refs))
    store_mapping(engine, "acme", TEST_MAPPING)
    assert run_sync(url, "acme", "full", instance=instance).success
    changed = simulator.touch(0.05, seed=5)
    nightly = run_sync(url, "acme", "nightly", instance=instance)
    assert nightly.success, nightly.reason
    assert (nightly.stages["contacts_mapped"]["mode"], nightly.stages["contacts_mapped"]["remapped"]) == (
        "delta", changed["contacts"])
    assert (nightly.stages["members_mapped"]["mode"], nightly.stages["members_mapped"]["remapped"]) == ("delta", 0)
