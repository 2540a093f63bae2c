"""The initial sync's `mapping_worklist` asset: decisions recorded like a map stage, with or
without a stored mapping, and the metadata the UI and the ready-to-map e-mail read."""

from __future__ import annotations

import re
from collections import Counter

from sqlalchemy import func, select

from hg_pipeline.orchestration.run import run_sync
from hg_pipeline.warehouse.tables import mapping_decisions, quarantine
from hg_pipeline_tests.orchestration.scenario import TEST_MAPPING
from hg_pipeline_tests.orchestration.test_user_walk import expected_choices

KINDS = {"company type": "company types", "contact type": "contact types", "product category": "product categories"}


def table_rows(markdown: str) -> dict[str, dict[str, int]]:
    rows: dict[str, dict[str, int]] = {}
    for line in markdown.splitlines()[2:]:
        kind, name, records = (cell.strip() for cell in line.strip("|").split(" | "))
        rows.setdefault(KINDS[kind], {})[name] = int(re.match(r"[\d,]+", records)[0].replace(",", ""))
    return rows


def decisions(engine, tenant_id: str) -> Counter:
    with engine.connect() as conn:
        return Counter({tuple(row[:3]): row[3] for row in conn.execute(
            select(mapping_decisions.c.entity, mapping_decisions.c.outcome, mapping_decisions.c.mapping_version,
                   func.count()).where(mapping_decisions.c.tenant_id == tenant_id)
            .group_by(mapping_decisions.c.entity, mapping_decisions.c.outcome, mapping_decisions.c.mapping_version))})


def test_without_a_mapping_everything_a_rule_decides_waits(warehouse, pg_url, instance, simulator, make_tenant):
    tenant = make_tenant("acme", simulator, mapping=None)
    dataset = simulator.dataset
    outcome = run_sync(pg_url, tenant, "initial", instance=instance)
    assert outcome.success, outcome.reason

    meta = outcome.stages["mapping_worklist"]
    expected = expected_choices(dataset)
    companies, contacts, products, members = (len(dataset.companies), len(dataset.contacts), len(dataset.catalog),
                                              len(dataset.members))
    assert meta["mapping"] == "none stored (an empty document)"
    assert meta["types_waiting"] == sum(len(names) for names in expected.values())
    assert (meta["companies_waiting"], meta["contacts_waiting"], meta["products_waiting"],
            meta["members_waiting"]) == (companies, contacts, products, 0)  # members import by default
    assert meta["records_waiting"] == companies + contacts + products
    assert meta["coverage_pct"] == round(100 * members / (companies + contacts + products + members), 1)
    assert table_rows(meta["unmapped"]) == expected
    # recorded like a map stage, with no mapping version; nothing quarantined twice
    assert decisions(warehouse, tenant) == {("companies", "pending", None): companies,
                                            ("contacts", "pending", None): contacts,
                                            ("products", "pending", None): products,
                                            ("members", "mapped", None): members}
    with warehouse.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(quarantine)) == 0

    # no mapping, no full sync: the map stages still refuse
    full = run_sync(pg_url, tenant, "full", instance=instance)
    assert not full.success
    assert full.failed_step == "companies_mapped"
    assert "tenant acme has no mapping yet" in full.reason


def test_the_stored_mapping_decides_and_the_full_sync_leaves_the_worklist_out(
        warehouse, pg_url, instance, simulator, make_tenant):
    tenant = make_tenant("acme", simulator)  # TEST_MAPPING: every type has a rule, categories auto-imported
    assert "auto_import_new_categories: true" in TEST_MAPPING
    dataset = simulator.dataset
    outcome = run_sync(pg_url, tenant, "initial", instance=instance)
    assert outcome.success, outcome.reason

    meta = outcome.stages["mapping_worklist"]
    no_type = sum(1 for c in dataset.contacts if not c["types"])
    assert meta["mapping"] == "version 1"
    assert table_rows(meta["unmapped"]) == {"contact types": {"(no type)": no_type}}
    assert meta["types_waiting"] == 1
    competitors = {c["id"] for c in dataset.companies if c["types"][0]["name"] == "Competitor"}
    waiting = sum(1 for c in dataset.contacts if not c["types"] and c["company"]["id"] not in competitors)
    assert (meta["records_waiting"], meta["contacts_waiting"], meta["companies_waiting"]) == (waiting, waiting, 0)
    recorded = decisions(warehouse, tenant)
    assert recorded[("contacts", "pending", 1)] == waiting
    assert {version for _, _, version in recorded} == {1}

    full = run_sync(pg_url, tenant, "full", instance=instance)
    assert full.success, full.reason
    assert "mapping_worklist" not in full.stages and "companies_mapped" in full.stages
