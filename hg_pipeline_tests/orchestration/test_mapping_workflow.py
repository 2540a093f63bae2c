"""Initial sync -> mapping -> full sync -> remap, on PostgreSQL through Dagster."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from dagster import build_sensor_context
from sqlalchemy import select

from hg_pipeline.cli import main
from hg_pipeline.ids import category_id
from hg_pipeline.orchestration.resources import WarehouseResource
from hg_pipeline.orchestration.run import run_sync
from hg_pipeline.orchestration.sensors import mapping_change_sensor, tenant_partitions_sensor
from hg_pipeline.warehouse.load import live_counts
from hg_pipeline.warehouse.mappings import current_mapping, store_mapping
from hg_pipeline.warehouse.staging import staged_records
from hg_pipeline.warehouse.tables import companies, products, raw_records, sync_runs
from hg_pipeline_tests.orchestration.scenario import TEST_MAPPING


def test_initial_sync_pulls_only_what_mapping_needs(warehouse, pg_url, instance, simulator, make_tenant):
    tenant = make_tenant("acme", simulator, mapping=None)
    outcome = run_sync(pg_url, tenant, "initial", instance=instance)
    assert outcome.success, outcome.reason
    with warehouse.connect() as conn:
        kinds = {row[0] for row in conn.execute(select(raw_records.c.entity).distinct())}
        run = conn.execute(select(sync_runs.c.kind, sync_runs.c.status)).one()
    # what the MSP maps, and the records behind each type and category; no configurations
    assert kinds == {"company_types", "contact_types", "product_categories", "companies", "contacts", "products",
                     "members"}
    assert tuple(run) == ("initial", "success")
    paths = ("/company/companies/types", "/company/contacts/types", "/procurement/categories",
             "/procurement/subcategories", "/company/companies", "/company/contacts", "/procurement/catalog",
             "/system/members")
    assert set(simulator.requests_by_path) <= {*paths, *(f"{path}/count" for path in paths)}
    assert live_counts(warehouse, tenant) == dict.fromkeys(live_counts(warehouse, tenant), 0)
    types = {r.record["name"] for r in staged_records(warehouse, tenant, "company_types")}
    assert {"Customer", "Prospect", "Vendor"} <= types
    # the run is tagged so that the ready-to-map notification can find it
    assert instance.get_run_by_id(outcome.run_id).tags["hg/kind"] == "initial"


def test_remap_moves_exactly_the_changed_products_without_calling_the_psa(
        warehouse, pg_url, instance, simulator, make_tenant):
    tenant = make_tenant("acme", simulator)
    assert run_sync(pg_url, tenant, "full", instance=instance).success
    before = _product_categories(warehouse, tenant)
    desktops = {str(p["id"]) for p in simulator.dataset.catalog
                if (p.get("subcategory") or {}).get("name") == "Desktops"}
    assert desktops
    store_mapping(warehouse, tenant, TEST_MAPPING.replace(
        '    "Misc": {action: ignore}',
        '    "Misc": {action: ignore}\n    "Hardware/Desktops": {action: map, to: "Hardware/Servers & Storage"}\n'
        '    "Telecom": {action: ignore}'))
    simulator.reset_counts()
    outcome = run_sync(pg_url, tenant, "remap", instance=instance)
    assert outcome.success, outcome.reason
    assert simulator.requests == 0
    after = _product_categories(warehouse, tenant)
    telecom = {str(p["id"]) for p in simulator.dataset.catalog if p["category"]["name"] == "Telecom"}
    moved = {psa_id for psa_id in after if after[psa_id] != before.get(psa_id)}
    assert moved == desktops
    assert all(after[p] == category_id("Hardware/Servers & Storage") for p in desktops)
    assert set(before) - set(after) == telecom  # newly ignored: soft-deleted
    assert outcome.stages["products"]["soft_deleted"] == len(telecom)
    assert outcome.stages["products"]["updated"] == len(desktops)


def test_map_to_an_existing_company_updates_it_instead_of_creating_one(
        warehouse, pg_url, instance, simulator, make_tenant):
    tenant = make_tenant("acme", simulator, mapping=None)
    now = datetime.now(timezone.utc)
    with warehouse.begin() as conn:
        conn.execute(companies.insert(), {"id": "hg-acme-hq", "tenant_id": tenant, "name": "Acme HQ (HighGround)",
                                          "hg_type": "client", "origin": "highground",
                                          "created_at": now, "updated_at": now})
    customer = next(c for c in simulator.dataset.companies if c["types"][0]["name"] == "Customer")
    store_mapping(warehouse, tenant, TEST_MAPPING.replace(
        "  types: {Customer", f'  records: {{"{customer["id"]}": {{action: map, to: hg-acme-hq}}}}\n  types: {{Customer'))
    assert run_sync(pg_url, tenant, "full", instance=instance).success
    with warehouse.connect() as conn:
        rows = conn.execute(select(companies.c.id, companies.c.name, companies.c.origin).where(
            companies.c.psa_id == str(customer["id"]))).all()
        count = conn.scalar(select(companies.c.id).where(companies.c.name == customer["name"]))
    assert rows == [("hg-acme-hq", "Acme HQ (HighGround)", "highground")]
    assert count is None  # no second company under the PSA name


def test_mapping_sensor_launches_one_remap_per_new_version(warehouse, pg_url, instance, simulator, make_tenant):
    tenant = make_tenant("acme", simulator)
    resources = {"warehouse": WarehouseResource(database_url=pg_url)}
    with build_sensor_context(instance=instance, resources=resources) as context:
        result = tenant_partitions_sensor(context)
    assert [r.partition_key for r in result.run_requests] == [tenant]
    host = simulator.base_url.split("//")[1]
    assert result.run_requests[0].tags == {"hg/tenant": tenant, "hg/kind": "initial", "hg/psa_host": host}
    instance.add_dynamic_partitions("tenants", [tenant])
    run_sync(pg_url, tenant, "initial", instance=instance)

    with build_sensor_context(instance=instance, resources=resources) as context:
        first = mapping_change_sensor(context)
        cursor = context.cursor
    assert [(r.partition_key, r.run_key) for r in first] == [(tenant, f"remap-{tenant}-v1")]
    with build_sensor_context(instance=instance, resources=resources, cursor=cursor) as context:
        assert not isinstance(mapping_change_sensor(context), list)  # nothing new: a SkipReason
    store_mapping(warehouse, tenant, TEST_MAPPING)
    with build_sensor_context(instance=instance, resources=resources, cursor=cursor) as context:
        second = mapping_change_sensor(context)
    assert [(r.partition_key, r.run_key, r.tags["hg/kind"]) for r in second] == [(tenant, f"remap-{tenant}-v2", "remap")]
    assert json.loads(context.cursor) == {tenant: 2}


def test_the_sensor_remap_runs_the_stages_the_new_version_reaches(warehouse, pg_url, instance, simulator,
                                                                     make_tenant):
    """A products-only change: the sensor's run request selects the products' and spend's
    stages, with their config; run as the daemon would, it moves the products."""
    from hg_pipeline.definitions import build_definitions
    from hg_pipeline.orchestration.resources import psa_resource, warehouse_resource

    tenant = make_tenant("acme", simulator)
    assert run_sync(pg_url, tenant, "full", instance=instance).success
    resources = {"warehouse": WarehouseResource(database_url=pg_url)}
    with build_sensor_context(instance=instance, resources=resources) as context:
        mapping_change_sensor(context)  # version 1 is applied already: nothing requested
        cursor = context.cursor
    store_mapping(warehouse, tenant, TEST_MAPPING.replace(
        '    "Misc": {action: ignore}', '    "Misc": {action: ignore}\n    "Telecom": {action: ignore}'))
    with build_sensor_context(instance=instance, resources=resources, cursor=cursor) as context:
        [request] = mapping_change_sensor(context)
    assert [key.to_user_string() for key in request.asset_selection] == [
        "products_mapped", "products", "spend_mapped", "spend"]
    assert set(request.run_config["ops"]) == {"products_mapped", "spend_mapped"}
    before = _product_categories(warehouse, tenant)
    defs = build_definitions({"warehouse": warehouse_resource(pg_url), "psa": psa_resource()})
    run = defs.resolve_job_def("remap").execute_in_process(
        run_config=request.run_config, instance=instance, partition_key=request.partition_key,
        asset_selection=request.asset_selection, tags=request.tags)
    assert run.success
    telecom = {str(p["id"]) for p in simulator.dataset.catalog if p["category"]["name"] == "Telecom"}
    assert telecom and set(before) - set(_product_categories(warehouse, tenant)) == telecom


def test_a_remap_plan_names_the_remap_jobs_own_assets(pg_url):
    """remap_plan builds asset names from entity names: they must be the remap job's assets."""
    from hg_pipeline.definitions import build_definitions
    from hg_pipeline.entities import LOADED_ENTITIES
    from hg_pipeline.orchestration.assets import LOAD_GROUP, MAP_GROUP
    from hg_pipeline.orchestration.jobs import DELTA_OPS_CONFIG, remap_plan
    from hg_pipeline.orchestration.mapping_stage import RemapReach
    from hg_pipeline.orchestration.resources import psa_resource, warehouse_resource

    defs = build_definitions({"warehouse": warehouse_resource(pg_url), "psa": psa_resource()})
    job_assets = {spec.key.to_user_string() for spec in defs.resolve_all_asset_specs()
                  if spec.group_name in (MAP_GROUP, LOAD_GROUP)}
    assert remap_plan(RemapReach(1, LOADED_ENTITIES, (), ())) == (None, DELTA_OPS_CONFIG)
    all_but_members = tuple(e for e in LOADED_ENTITIES if e != "members")
    selection, ops = remap_plan(RemapReach(1, all_but_members, (), ("members",)))
    assert {key.to_user_string() for key in selection} | {"members_mapped", "members"} == job_assets
    assert set(ops) == set(DELTA_OPS_CONFIG) - {"members_mapped"}
    selection, _ = remap_plan(RemapReach(1, ("contacts",), ("companies",), ("products", "members", "assets")))
    assert sorted(key.to_user_string() for key in selection) == [
        "companies_mapped", "contacts", "contacts_mapped", "spend", "spend_mapped"]


def _product_categories(engine, tenant_id: str) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(select(products.c.psa_id, products.c.category_id).where(
            products.c.tenant_id == tenant_id, products.c.deleted_at.is_(None))).all())


def test_mapping_import_refuses_bad_documents_and_keeps_the_version(warehouse, pg_url, simulator, make_tenant,
                                                                     tmp_path, capsys):
    tenant = make_tenant("acme", simulator)
    broken = {
        "yaml syntax": ("companies:\n  types: {Customer: client\n", "line 3"),
        "unknown key": ("companies:\n  typos: {Customer: client}\n", "line 2"),
        "unknown action": ("members:\n  records:\n    \"17\": {action: promote}\n", "line 3"),
        "unknown company": ("companies:\n  records:\n    \"5\": {action: map, to: hg-nowhere}\n", "line 3"),
        "unknown category": ("products:\n  categories:\n    Misc: {action: map, to: \"Hardware/Toasters\"}\n", "line 3"),
        "percentages": ("products:\n  distributions:\n    \"B-1\":\n      - {to: \"Security/Email Security\", pct: 40}\n"
                        "      - {to: \"Other/Miscellaneous\", pct: 50}\n", "90"),
    }
    for name, (text, expected) in broken.items():
        path = tmp_path / f"{name.replace(' ', '_')}.yaml"
        path.write_text(text)
        code = main(["mapping", "import", tenant, str(path), "--database-url", pg_url])
        err = capsys.readouterr().err
        assert code == 2, name
        assert err.count("\n") == 1 and expected in err and str(path) in err, (name, err)
        assert current_mapping(warehouse, tenant).version == 1, name
        assert current_mapping(warehouse, tenant).document == TEST_MAPPING


def test_mapping_export_round_trips_and_pending_and_details(warehouse, pg_url, instance, simulator, make_tenant,
                                                           tmp_path, capsys):
    tenant = make_tenant("acme", simulator)
    document = tmp_path / "mapping.yaml"
    document.write_text(TEST_MAPPING + "# a comment survives\n")
    assert main(["mapping", "import", tenant, str(document), "--database-url", pg_url]) == 0
    capsys.readouterr()
    assert main(["mapping", "export", tenant, "--database-url", pg_url]) == 0
    assert capsys.readouterr().out == document.read_text()

    assert run_sync(pg_url, tenant, "full", instance=instance).success
    assert main(["mapping", "pending", tenant, "--database-url", pg_url]) == 0
    out = capsys.readouterr().out
    no_type = sum(1 for c in simulator.dataset.contacts if not c.get("types"))
    assert "(no type)" in out and str(no_type) in out

    contact = simulator.dataset.contacts[3]
    assert main(["mapping", "details", tenant, "contacts", str(contact["id"]), "--database-url", pg_url]) == 0
    assert json.loads(capsys.readouterr().out) == contact
