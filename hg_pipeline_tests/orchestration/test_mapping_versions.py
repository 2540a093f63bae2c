"""A user's walk through mapping versions: the import guard, --force, the volume check of a
remap, `mapping versions`, `export --version` and `rollback`; on PostgreSQL through Dagster."""

from __future__ import annotations

import re

from dagster import DagsterEventType, build_sensor_context
from sqlalchemy import select

from hg_pipeline.cli import main
from hg_pipeline.orchestration.resources import WarehouseResource
from hg_pipeline.orchestration.run import run_sync
from hg_pipeline.orchestration.sensors import mapping_change_sensor
from hg_pipeline.warehouse.load import live_counts
from hg_pipeline.warehouse.mappings import current_mapping, mapping_history, store_mapping
from hg_pipeline.warehouse.tables import LOADED_TABLES
from hg_pipeline_tests.orchestration.scenario import TEST_MAPPING

# An empty document: every company, and with them every contact and asset, becomes pending,
# and every product too (no category rule); members are imported by default.
EMPTY = "# nothing mapped yet\n"
LOSING = ("companies", "contacts", "products", "assets")


def cli(pg_url: str, *args: str) -> int:
    return main([*args, "--database-url", pg_url])


def remaps_requested(instance, pg_url: str, cursor: str | None) -> tuple[list[str], str]:
    resources = {"warehouse": WarehouseResource(database_url=pg_url)}
    with build_sensor_context(instance=instance, resources=resources, cursor=cursor) as context:
        requests = mapping_change_sensor(context)
        return [r.run_key for r in requests] if isinstance(requests, list) else [], context.cursor


def test_an_empty_mapping_is_refused_then_forced_then_rolled_back(
        warehouse, pg_url, instance, simulator, make_tenant, tmp_path, capsys):
    tenant = make_tenant("acme", simulator)
    assert run_sync(pg_url, tenant, "full", instance=instance).success
    before, ids_before = live_counts(warehouse, tenant), _all_ids(warehouse, tenant)
    assert all(before[entity] for entity in LOSING)
    _, cursor = remaps_requested(instance, pg_url, None)
    empty = tmp_path / "empty.yaml"
    empty.write_text(EMPTY)

    # refused: one line with the counts, nothing stored
    assert cli(pg_url, "mapping", "import", tenant, str(empty)) == 2
    err = capsys.readouterr().err
    announced = ", ".join(f"{before[e]} of {before[e]} {e}" for e in ("companies", "contacts", "products", "assets"))
    assert err == (f"hg-pipeline: {empty}: this version would soft-delete {announced} (more than 20% of live "
                   "rows); nothing stored; re-run with --force to accept\n")
    assert current_mapping(warehouse, tenant).version == 1
    assert remaps_requested(instance, pg_url, cursor)[0] == []

    # forced: stored with what it accepted, and the remap soft-deletes exactly that, and passes
    assert cli(pg_url, "mapping", "import", tenant, str(empty), "--force") == 0
    assert "mapping version 2 stored" in capsys.readouterr().out
    forced = current_mapping(warehouse, tenant)
    assert forced.version == 2 and forced.document == EMPTY
    assert forced.accepted_deletions == {e: before[e] for e in LOSING}
    assert forced.comment == ("forced: accepted soft-deleting " + ", ".join(
        f"{before[e]} {e}" for e in ("companies", "contacts", "products", "assets")))
    keys, cursor = remaps_requested(instance, pg_url, cursor)
    assert keys == [f"remap-{tenant}-v2"]
    outcome = run_sync(pg_url, tenant, "remap", instance=instance)
    assert outcome.success, outcome.reason
    assert {e: outcome.stages[e]["soft_deleted"] for e in LOSING} == {e: before[e] for e in LOSING}
    assert live_counts(warehouse, tenant) == {**dict.fromkeys(LOSING, 0), "members": before["members"]}

    # the history, and version 1 exactly as it was imported
    assert cli(pg_url, "mapping", "versions", tenant) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert re.fullmatch(r"1\t\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\t-\t-", lines[0])
    assert lines[1].split("\t")[2:] == ["in force", forced.comment]
    assert cli(pg_url, "mapping", "export", tenant, "--version", "1") == 0
    assert capsys.readouterr().out == TEST_MAPPING
    assert cli(pg_url, "mapping", "export", tenant, "--version", "7") == 2
    assert "no mapping version 7 (versions 1 to 2)" in capsys.readouterr().err

    # rollback: version 1's document as version 3; the remap brings the same rows back
    assert cli(pg_url, "mapping", "rollback", tenant, "1") == 0
    capsys.readouterr()
    rolled = current_mapping(warehouse, tenant)
    assert (rolled.version, rolled.document, rolled.comment) == (3, TEST_MAPPING, "rollback to version 1")
    assert rolled.accepted_deletions == {}
    assert remaps_requested(instance, pg_url, cursor)[0] == [f"remap-{tenant}-v3"]
    outcome = run_sync(pg_url, tenant, "remap", instance=instance)
    assert outcome.success, outcome.reason
    assert live_counts(warehouse, tenant) == before
    assert _all_ids(warehouse, tenant) == ids_before  # undeleted, not created again
    assert outcome.stages["companies"]["inserted"] == 0
    assert outcome.stages["companies"]["updated"] == before["companies"]

    # the guard applies to a rollback too
    assert cli(pg_url, "mapping", "rollback", tenant, "2") == 2
    err = capsys.readouterr().err
    assert err.startswith("hg-pipeline: mapping version 2: this version would soft-delete ")
    assert err.count("\n") == 1 and "--force" in err
    assert cli(pg_url, "mapping", "rollback", tenant, "3") == 2
    assert "already in force" in capsys.readouterr().err
    assert [v.version for v in mapping_history(warehouse, tenant)] == [1, 2, 3]


def test_a_version_stored_without_force_cannot_wipe_the_warehouse(warehouse, pg_url, instance, simulator,
                                                                  make_tenant):
    """A version stored by code, past the guard: the volume check counts the rows leaving by
    mapping, so the remap fails before its load."""
    tenant = make_tenant("acme", simulator)
    assert run_sync(pg_url, tenant, "full", instance=instance).success
    before = live_counts(warehouse, tenant)
    store_mapping(warehouse, tenant, EMPTY)
    outcome = run_sync(pg_url, tenant, "remap", instance=instance)
    assert not outcome.success
    assert outcome.failed_step == "companies_mapped"
    assert (f"would soft-delete {before['companies']} of {before['companies']} companies: "
            f"0 vanished, {before['companies']} by mapping (100% > 20%)") in outcome.reason
    assert "companies" not in outcome.stages
    assert live_counts(warehouse, tenant) == before


def test_accepted_deletions_do_not_cover_records_that_vanished(warehouse, pg_url, instance, simulator, make_tenant,
                                                               tmp_path, capsys):
    """Forcing a version that ignores hardware (laptops keep their subcategory rule) accepts
    exactly those products; products that vanish from the PSA in the same sync still count
    against the share."""
    tenant = make_tenant("acme", simulator)
    assert run_sync(pg_url, tenant, "full", instance=instance).success
    before = live_counts(warehouse, tenant)
    hardware = {str(p["id"]) for p in simulator.dataset.catalog if p["category"]["name"] == "Hardware"
                and (p.get("subcategory") or {}).get("name") != "Laptops"}
    no_hardware = tmp_path / "no_hardware.yaml"
    no_hardware.write_text(TEST_MAPPING.replace('    "Misc": {action: ignore}',
                                                '    "Misc": {action: ignore}\n    "Hardware": {action: ignore}'))
    assert cli(pg_url, "mapping", "import", tenant, str(no_hardware)) == 2
    assert f"would soft-delete {len(hardware)} of {before['products']} products" in capsys.readouterr().err
    assert cli(pg_url, "mapping", "import", tenant, str(no_hardware), "--force") == 0
    assert current_mapping(warehouse, tenant).accepted_deletions == {"products": len(hardware)}

    with simulator.lock:  # a quarter of the other products vanish from the PSA
        others = [p for p in simulator.dataset.catalog if str(p["id"]) not in hardware]
        gone = {id(p) for p in others[: len(others) // 4 + 1]}
        simulator.dataset.catalog[:] = [p for p in simulator.dataset.catalog if id(p) not in gone]
    outcome = run_sync(pg_url, tenant, "full", instance=instance)
    assert not outcome.success
    assert outcome.failed_step == "products_mapped"
    vanished = len(gone)
    assert (f"would soft-delete {vanished + len(hardware)} of {before['products']} products: {vanished} vanished, "
            f"{len(hardware)} by mapping ({len(hardware)} accepted with the mapping version); "
            f"{vanished} counted") in outcome.reason
    assert live_counts(warehouse, tenant)["products"] == before["products"]

    # the check's metadata tells the two apart
    evaluation = _volume_metadata(instance, outcome.run_id, "products_mapped")
    assert evaluation == {"live": before["products"], "vanished": vanished, "by_mapping": len(hardware),
                          "accepted_by_mapping": len(hardware), "mapping_version": 2}


def test_a_document_with_several_problems_reports_each_with_its_line(warehouse, pg_url, simulator, make_tenant,
                                                                     tmp_path, capsys):
    tenant = make_tenant("acme", simulator)
    path = tmp_path / "mapping.yaml"
    path.write_text("companies:\n  types: {Customer: clinet}\ncontacts:\n  enabeld: true\n"
                    "products:\n  categories:\n    Misc: {action: drop}\n")
    assert cli(pg_url, "mapping", "import", tenant, str(path)) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"hg-pipeline: {path}: 3 problems; nothing stored"
    assert [line.split(":")[0] for line in lines[1:]] == ["  line 2", "  line 4", "  line 7"]
    assert 'unknown target "clinet"' in lines[1] and '"enabeld"' in lines[2] and '"drop"' in lines[3]
    assert current_mapping(warehouse, tenant).version == 1


def _all_ids(engine, tenant_id: str) -> dict[str, set[str]]:
    with engine.connect() as conn:
        return {entity: set(conn.scalars(select(table.c.id).where(table.c.tenant_id == tenant_id,
                                                                  table.c.deleted_at.is_(None))))
                for entity, table in LOADED_TABLES.items()}


def _volume_metadata(instance, run_id: str, asset: str) -> dict:
    for record in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
        data = record.dagster_event.event_specific_data
        if data.check_name == "soft_delete_volume" and data.asset_key.to_user_string() == asset:
            return {key: data.metadata[key].value
                    for key in ("live", "vanished", "by_mapping", "accepted_by_mapping", "mapping_version")}
    raise AssertionError(f"no soft_delete_volume evaluation for {asset}")
