"""Smart mapping end to end: a sync against the ConnectWise simulator into PostgreSQL, then
`mapping suggest`, `--accept-above` and a remap; the map stage applying proposals itself."""

from __future__ import annotations

import json

from sqlalchemy import select

from hg_pipeline.cli import main
from hg_pipeline.ids import category_id
from hg_pipeline.mapping.document import SmartMapping, parse_document
from hg_pipeline.orchestration.run import run_sync
from hg_pipeline.warehouse.mappings import current_mapping, store_mapping
from hg_pipeline.warehouse.tables import products
from hg_pipeline_tests.orchestration.conftest import instance, make_tenant, simulator  # noqa: F401 - fixtures
from hg_pipeline_tests.orchestration.scenario import TEST_MAPPING

# Only laptops and Misc have a rule: every other product is unmapped (auto import off).
NO_AUTO_IMPORT = TEST_MAPPING.replace("auto_import_new_categories: true", "auto_import_new_categories: false")


def _products(engine, tenant):
    with engine.connect() as conn:
        rows = conn.execute(select(products.c.psa_id, products.c.category_id, products.c.mapping_source).where(
            products.c.tenant_id == tenant, products.c.deleted_at.is_(None))).all()
    return {row.psa_id: (row.category_id, row.mapping_source) for row in rows}


def test_suggest_then_accept_above_stores_a_version_that_a_remap_applies(
        warehouse, pg_url, instance, simulator, make_tenant, capsys):  # noqa: F811
    tenant = make_tenant("acme", simulator, mapping=NO_AUTO_IMPORT)
    assert run_sync(pg_url, tenant, "full", instance=instance).success
    before = _products(warehouse, tenant)
    catalog = {str(p["id"]): p for p in simulator.dataset.catalog}
    laptops = {i for i, p in catalog.items() if (p.get("subcategory") or {}).get("name") == "Laptops"}
    assert set(before) == laptops  # nothing else has a rule

    capsys.readouterr()
    assert main(["mapping", "suggest", tenant, "--format", "json", "--database-url", pg_url]) == 0
    proposals = json.loads(capsys.readouterr().out)
    ids = {p["psa_id"] for p in proposals}
    assert ids and not ids & laptops  # only unmapped products
    misc = {i for i, p in catalog.items() if p["category"]["name"] == "Misc"}
    assert not ids & misc  # ignored by its category rule: not unmapped
    assert all(set(p) == {"psa_id", "name", "suggestion", "confidence", "alternatives"} for p in proposals)
    assert all(0 <= p["confidence"] <= 1 and len(p["alternatives"]) == 2 for p in proposals)
    by_id = {p["psa_id"]: p for p in proposals}
    m365 = next(i for i, p in catalog.items() if p["identifier"] == "M365-BP")
    assert by_id[m365]["suggestion"] == "Software & Licensing/Productivity Suites"

    threshold = 0.8
    accepted = {i: p["suggestion"] for i, p in by_id.items() if p["confidence"] >= threshold}
    assert accepted and len(accepted) < len(by_id)
    assert main(["mapping", "suggest", tenant, "--accept-above", str(threshold), "--database-url", pg_url]) == 0
    assert f"{len(accepted)} proposals with confidence >= 0.8 accepted" in capsys.readouterr().out
    stored = current_mapping(warehouse, tenant)
    assert stored.version == 2
    records = parse_document(stored.document).products.records
    assert {k: r.to for k, r in records.items() if r.action == "map"} == accepted

    assert run_sync(pg_url, tenant, "remap", instance=instance).success
    after = _products(warehouse, tenant)
    assert set(after) == laptops | set(accepted)
    assert all(after[i] == (category_id(path), "record") for i, path in accepted.items())

    # the text format names each proposal; nothing accepted twice
    assert main(["mapping", "suggest", tenant, "--database-url", pg_url]) == 0
    out = capsys.readouterr().out
    assert not any(f"\n{i}\t" in f"\n{out}" for i in accepted)
    assert f"proposals at or above min_confidence {SmartMapping().min_confidence:g}\n" in out  # the default


def test_map_stage_applies_proposals_above_min_confidence(
        warehouse, pg_url, instance, simulator, make_tenant):  # noqa: F811
    mapping = NO_AUTO_IMPORT.replace("members:", "  smart_mapping: {enabled: true, min_confidence: 0.9}\nmembers:")
    tenant = make_tenant("acme", simulator, mapping=mapping)
    outcome = run_sync(pg_url, tenant, "full", instance=instance)
    assert outcome.success, outcome.reason
    rows = _products(warehouse, tenant)
    smart = {i for i, (_, source) in rows.items() if source == "smart"}
    assert smart and {source for _, source in rows.values()} == {"category", "smart"}
    # the asset's metadata counts every product by what decided it
    materialization = instance.get_latest_materialization_event(_key("products_mapped"))
    decided = materialization.asset_materialization.metadata["decided_by"].data
    assert decided["smart"] == len(smart) and decided["category"] == len(rows) - len(smart)
    assert decided["pending"] > 0 and sum(decided.values()) == len(simulator.dataset.catalog)
    # a record rule wins over the proposal
    first = sorted(smart)[0]
    store_mapping(warehouse, tenant, mapping.replace(
        '    "Misc": {action: ignore}',
        f'    "Misc": {{action: ignore}}\n  records:\n    "{first}": {{action: map, to: "Other/Miscellaneous"}}'))
    assert run_sync(pg_url, tenant, "remap", instance=instance).success
    assert _products(warehouse, tenant)[first] == (category_id("Other/Miscellaneous"), "record")


def test_suggest_refuses_a_bad_threshold_and_an_unsynced_tenant(
        warehouse, pg_url, simulator, make_tenant, capsys):  # noqa: F811
    tenant = make_tenant("acme", simulator)
    assert main(["mapping", "suggest", tenant, "--database-url", pg_url]) == 2
    assert "no products staged yet" in capsys.readouterr().err
    try:
        main(["mapping", "suggest", tenant, "--accept-above", "1.5", "--database-url", pg_url])
    except SystemExit as exc:
        assert exc.code == 2
    assert "not a number between 0 and 1" in capsys.readouterr().err


def _key(name):
    from dagster import AssetKey

    return AssetKey(name)
