"""The `import_batches` sensor: a committed API batch starts its tenant's sync, and that sync
loads exactly the posted records. Sensors evaluated with Dagster's testing helpers on a test
instance; the records go through the real API server."""

from __future__ import annotations

import pytest
from dagster import build_sensor_context, instance_for_test
from sqlalchemy import select

from hg_pipeline.definitions import build_definitions
from hg_pipeline.orchestration.resources import PsaResource, WarehouseResource
from hg_pipeline.orchestration.run import run_sync
from hg_pipeline.orchestration.jobs import RECONCILE_OPS_CONFIG
from hg_pipeline.orchestration.sensors import import_batch_sensor, tenant_partitions_sensor
from hg_pipeline.warehouse.mappings import store_mapping
from hg_pipeline.warehouse.tables import assets, companies, contacts, members, products, raw_records
from hg_pipeline.warehouse.tenants import Tenant, add_tenant
from hg_pipeline_tests.orchestration.scenario import TEST_MAPPING


@pytest.fixture
def instance():
    with instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture
def evaluate(pg_url, instance):
    repository = build_definitions({"warehouse": WarehouseResource(database_url=pg_url),
                                    "psa": PsaResource()}).get_repository_def()

    def run(sensor_def, cursor=None):
        # instance_ref too: without it the context cannot resolve dynamic partitions of run requests
        with build_sensor_context(instance=instance, instance_ref=instance.get_ref(), cursor=cursor,
                                  repository_def=repository, sensor_name=sensor_def.name,
                                  resources={"warehouse": WarehouseResource(database_url=pg_url)}) as context:
            return sensor_def.evaluate_tick(context)

    return run


def post_batch(acme, records: dict[str, list[dict]], *, commit: bool = True) -> int:
    batch_id = acme.open_batch()
    for entity, rows in records.items():
        response = acme.post(f"/v1/batches/{batch_id}/{entity}", rows)
        assert response.status_code == 200, response.text
    if commit:
        assert acme.post(f"/v1/batches/{batch_id}/commit").status_code == 200
    return batch_id


COMPANIES = [{"id": "C1", "name": "Globex", "type": "Customer"}, {"id": "C2", "name": "Initech", "type": "Vendor"}]


def requested(result) -> list[tuple]:
    return sorted((r.partition_key, r.run_key, r.job_name, r.tags["hg/tenant"], r.tags["hg/kind"],
                   "hg/psa_host" in r.tags) for r in result.run_requests)


def test_a_committed_batch_starts_one_sync_of_its_tenant(pg_url, warehouse, instance, evaluate, client,
                                                         import_tenant):
    _, token_a = import_tenant("acme")  # not mapped yet: the initial sync, so the MSP maps first
    _, token_g = import_tenant("globex")
    store_mapping(warehouse, "globex", TEST_MAPPING)  # mapped: a full sync
    instance.add_dynamic_partitions("tenants", ["acme", "globex"])
    acme, globex = client(token_a), client(token_g)

    post_batch(acme, {"companies": COMPANIES}, commit=False)  # half sent: no sync
    assert evaluate(import_batch_sensor).skip_message

    first = post_batch(acme, {"companies": COMPANIES})
    second = post_batch(acme, {"companies": COMPANIES[:1]}, commit=False)
    theirs = post_batch(globex, {"companies": COMPANIES})
    assert acme.post(f"/v1/batches/{second}/commit").status_code == 200
    result = evaluate(import_batch_sensor)
    assert requested(result) == [  # one run per tenant, keyed on its newest batch
        ("acme", f"import-acme-{second}", "initial_sync", "acme", "initial", False),
        ("globex", f"import-globex-{theirs}", "full_sync", "globex", "full", False)]
    assert int(result.cursor) == max(first, second, theirs)
    # the batch's staging times are the import API's clock: its full sync maps every record again
    full = next(r for r in result.run_requests if r.partition_key == "globex")
    assert full.run_config == {"ops": RECONCILE_OPS_CONFIG}
    again = evaluate(import_batch_sensor, result.cursor)
    assert not again.run_requests and again.skip_message

    # Once acme's initial sync ran, even a sensor without a cursor leaves its batches alone.
    assert run_sync(pg_url, "acme", "initial", instance=instance).success
    assert [r.run_key for r in evaluate(import_batch_sensor).run_requests] == [f"import-globex-{theirs}"]


def test_batches_of_a_tenant_not_yet_a_partition_wait_for_it(warehouse, instance, evaluate, client, import_tenant):
    _, token_n = import_tenant("newbie")
    _, token_a = import_tenant("acme")
    instance.add_dynamic_partitions("tenants", ["acme"])
    waiting = post_batch(client(token_n), {"companies": COMPANIES})
    ready = post_batch(client(token_a), {"companies": COMPANIES})

    result = evaluate(import_batch_sensor)
    assert [r.run_key for r in result.run_requests] == [f"import-acme-{ready}"]
    assert int(result.cursor) == waiting - 1  # newbie's batch is looked at again
    instance.add_dynamic_partitions("tenants", ["newbie"])
    later = evaluate(import_batch_sensor, result.cursor)
    assert sorted(r.run_key for r in later.run_requests) == [f"import-acme-{ready}", f"import-newbie-{waiting}"]
    assert int(later.cursor) == ready


def test_the_tenant_sensor_leaves_an_import_tenant_to_its_batches(warehouse, instance, evaluate, import_tenant):
    import_tenant("acme")
    add_tenant(warehouse, Tenant("cw", "Cw", "connectwise", "https://na.myconnectwise.net",
                                 {"company_id": "env:A", "public_key": "env:B", "private_key": "env:C",
                                  "client_id": "env:D"}))
    result = evaluate(tenant_partitions_sensor)
    assert [list(r.partition_keys) for r in result.dynamic_partitions_requests] == [["acme", "cw"]]
    assert [r.run_key for r in result.run_requests] == ["initial-cw"]  # nothing staged for acme: no sync


EXTRA = [{"id": f"E{i}", "name": f"Extra {i}", "type": "Customer"} for i in range(7)]
RECORDS = {
    "companies": [{"id": "C1", "name": "Globex", "type": "Customer"}, {"id": 2, "name": "Initech", "type": "Vendor"},
                  {"id": "C3", "name": "Hooli", "type": "Prospect"}, *EXTRA],
    "contacts": [{"id": "P1", "company_id": "C1", "first_name": "Ann", "last_name": "Lee",
                  "email": "ann@globex.example", "type": "Billing"},
                 {"id": "P2", "company_id": "2", "last_name": "Ngo", "type": "End User", "inactive": False}],
    "products": [{"id": "SKU-1", "name": "ThinkPad T14", "sku": "T14", "category": "Hardware/Laptops",
                  "price": 1250.5, "cost": "999.00"},
                 {"id": "SKU-2", "name": "Backup", "category": "Services", "price": "20"}],
    "members": [{"id": "M1", "name": "Sam Tech", "email": "sam@msp.example"}, {"id": "M2", "first_name": "Kim"}],
    "assets": [{"id": "A1", "company_id": "C1", "name": "FW-01", "asset_type": "Firewall", "serial_number": "S1"}],
    "spend": [{"company_id": "C1", "product_id": "SKU-1", "month": "2026-10", "amount": "1250.50",
               "currency": "usd"}],
}


def live(warehouse, table, *columns) -> dict:
    with warehouse.connect() as conn:
        rows = conn.execute(select(table.c.psa_id, *(table.c[c] for c in columns)).where(
            table.c.tenant_id == "acme", table.c.deleted_at.is_(None))).all()
    return {row[0]: tuple(row[1:]) for row in rows}


def test_after_commit_the_sensor_sync_loads_exactly_the_posted_records(pg_url, warehouse, instance, evaluate,
                                                                       client, import_tenant):
    tenant, token = import_tenant("acme")
    store_mapping(warehouse, tenant, TEST_MAPPING)
    instance.add_dynamic_partitions("tenants", [tenant])
    acme = client(token)
    batch = post_batch(acme, RECORDS)

    result = evaluate(import_batch_sensor)
    [request] = result.run_requests
    assert (request.run_key, request.tags["hg/kind"]) == (f"import-acme-{batch}", "full")
    outcome = run_sync(pg_url, tenant, request.tags["hg/kind"], instance=instance)
    assert outcome.success, outcome.reason

    assert live(warehouse, companies, "name", "hg_type", "psa_type") == {
        "C1": ("Globex", "client", "Customer"), "2": ("Initech", "supplier", "Vendor"),
        "C3": ("Hooli", "prospect", "Prospect"), **{e["id"]: (e["name"], "client", "Customer") for e in EXTRA}}
    assert live(warehouse, contacts, "first_name", "last_name", "email", "contact_type") == {
        "P1": ("Ann", "Lee", "ann@globex.example", "Billing"), "P2": (None, "Ngo", None, "End User")}
    assert live(warehouse, products, "name", "sku", "price", "cost") == {
        "SKU-1": ("ThinkPad T14", "T14", 1250.5, 999.0), "SKU-2": ("Backup", None, 20.0, None)}
    assert live(warehouse, members, "name", "email") == {"M1": ("Sam Tech", "sam@msp.example"), "M2": ("Kim", None)}
    assert live(warehouse, assets, "name", "asset_type", "serial_number") == {"A1": ("FW-01", "Firewall", "S1")}
    with warehouse.connect() as conn:
        spend = conn.execute(select(raw_records.c.psa_id).where(
            raw_records.c.tenant_id == tenant, raw_records.c.entity == "spend")).scalars().all()
    assert spend == ["C1|SKU-1||2026-10|USD"]

    # That sync read the batch: the sensor, even from scratch, asks nothing more.
    assert not evaluate(import_batch_sensor).run_requests

    # The next full batch lacks Hooli: its sync soft-deletes it (1 of 10, under the quality
    # gate's share) and keeps the rest.
    smaller = post_batch(acme, {"companies": [r for r in RECORDS["companies"] if r["id"] != "C3"]})
    [request] = evaluate(import_batch_sensor, result.cursor).run_requests
    assert request.run_key == f"import-acme-{smaller}"
    assert run_sync(pg_url, tenant, request.tags["hg/kind"], instance=instance).success
    assert sorted(live(warehouse, companies)) == sorted(["2", "C1", *(e["id"] for e in EXTRA)])
    assert sorted(live(warehouse, contacts)) == ["P1", "P2"]
