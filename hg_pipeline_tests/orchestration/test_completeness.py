"""Completeness before deletion: pages that do not add up fail the extract and delete nothing.

An empty or short page before the last, fewer records than the PSA's own count, or nothing at
all where records were staged and no count can be read: the extraction is incomplete, its
transaction rolls back, nothing is marked as vanished, and the next sync after the PSA heals
converges.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy import func, select

from hg_pipeline.cli import main
from hg_pipeline.orchestration.resources import PsaResource
from hg_pipeline.orchestration.run import run_sync
from hg_pipeline.simulators.connectwise import API_PREFIX, DEMO_CREDENTIALS
from hg_pipeline.warehouse.mappings import store_mapping
from hg_pipeline.warehouse.tables import raw_records
from hg_pipeline_tests.orchestration.scenario import TEST_MAPPING
from hg_pipeline_tests.orchestration.test_full_sync import expected, live_rows

CONFIGURATIONS = "/company/configurations"
SMALL_PAGES = PsaResource(page_size=10, max_retries=1)  # 120 configurations: 12 pages


def staged_live(engine, tenant: str, entity: str) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(raw_records).where(
            raw_records.c.tenant_id == tenant, raw_records.c.entity == entity, raw_records.c.vanished_at.is_(None)))


def synced(pg_url, instance, tenant, warehouse, simulator):
    outcome = run_sync(pg_url, tenant, "full", instance=instance, psa=SMALL_PAGES)
    assert outcome.success, outcome.reason
    assets = live_rows(warehouse, "assets", tenant)
    assert set(assets) == expected(simulator.dataset)["assets"]
    return assets


def test_an_empty_middle_page_fails_the_extract_and_deletes_nothing(warehouse, pg_url, instance, simulator,
                                                                    make_tenant):
    tenant = make_tenant("acme", simulator)
    before = synced(pg_url, instance, tenant, warehouse, simulator)
    simulator.short_page(CONFIGURATIONS, 5)  # every time it is asked for
    simulator.reset_counts()
    outcome = run_sync(pg_url, tenant, "full", instance=instance, psa=SMALL_PAGES)
    assert not outcome.success
    assert outcome.failed_step == "assets_raw"
    assert outcome.reason == (
        "tenant acme: extract assets failed: incomplete extraction: page 5 of 12 came back empty "
        "(received 110 of the 120 the PSA counts); nothing marked as vanished")
    assert simulator.requests_by_path[CONFIGURATIONS] == 12 + 2  # page 5 asked for twice more
    assert "assets" not in outcome.stages  # neither mapped nor loaded
    assert outcome.stages["companies"]["soft_deleted"] == 0  # the other entities went on
    assert live_rows(warehouse, "assets", tenant) == before
    assert staged_live(warehouse, tenant, "assets") == 120  # the last good staging stays

    simulator.mend_pages()  # the PSA heals
    healed = run_sync(pg_url, tenant, "full", instance=instance, psa=SMALL_PAGES)
    assert healed.success, healed.reason
    assert healed.stages["assets_raw"]["vanished"] == 0 and healed.stages["assets"]["soft_deleted"] == 0
    assert live_rows(warehouse, "assets", tenant) == before


def test_a_short_page_that_heals_on_the_retry_is_fine(warehouse, pg_url, instance, simulator, make_tenant):
    tenant = make_tenant("acme", simulator)
    before = synced(pg_url, instance, tenant, warehouse, simulator)
    simulator.short_page(CONFIGURATIONS, 3, keep=4, first=1)  # once only
    outcome = run_sync(pg_url, tenant, "full", instance=instance, psa=SMALL_PAGES)
    assert outcome.success, outcome.reason
    assert outcome.stages["assets_raw"]["received"] == 120 and outcome.stages["assets_raw"]["vanished"] == 0
    assert live_rows(warehouse, "assets", tenant) == before


def test_a_short_middle_page_names_what_it_held(warehouse, pg_url, instance, simulator, make_tenant):
    tenant = make_tenant("acme", simulator)
    synced(pg_url, instance, tenant, warehouse, simulator)
    simulator.short_page(CONFIGURATIONS, 2, keep=7)
    outcome = run_sync(pg_url, tenant, "full", instance=instance, psa=SMALL_PAGES)
    assert outcome.reason == (
        "tenant acme: extract assets failed: incomplete extraction: page 2 of 12 came back with 7 of 10 "
        "records (received 117 of the 120 the PSA counts); nothing marked as vanished")
    assert staged_live(warehouse, tenant, "assets") == 120


def test_fewer_records_than_the_psa_counts_fails_likewise(warehouse, pg_url, instance, simulator, make_tenant):
    tenant = make_tenant("acme", simulator)
    before = synced(pg_url, instance, tenant, warehouse, simulator)
    simulator.lie_about_count(CONFIGURATIONS, 50)  # the PSA counts 170, serves 120
    outcome = run_sync(pg_url, tenant, "full", instance=instance, psa=PsaResource(max_retries=1))  # one page
    assert outcome.reason == (
        "tenant acme: extract assets failed: incomplete extraction: received 120 of the 170 the PSA counts; "
        "nothing marked as vanished")
    assert live_rows(warehouse, "assets", tenant) == before

    simulator.mend_pages()
    healed = run_sync(pg_url, tenant, "full", instance=instance)
    assert healed.success, healed.reason
    assert live_rows(warehouse, "assets", tenant) == before


def test_a_first_page_of_nothing_against_a_count_is_incomplete(warehouse, pg_url, instance, simulator, make_tenant):
    tenant = make_tenant("acme", simulator)
    before = synced(pg_url, instance, tenant, warehouse, simulator)
    simulator.short_page(CONFIGURATIONS, 1)
    outcome = run_sync(pg_url, tenant, "full", instance=instance, psa=PsaResource(max_retries=1))
    assert outcome.reason == (
        "tenant acme: extract assets failed: incomplete extraction: received 0 of the 120 the PSA counts; "
        "nothing marked as vanished")
    assert live_rows(warehouse, "assets", tenant) == before


def test_nothing_back_without_a_count_is_incomplete_but_a_count_of_zero_is_believed(
        warehouse, pg_url, instance, simulator, make_tenant):
    tenant = make_tenant("acme", simulator)
    before = synced(pg_url, instance, tenant, warehouse, simulator)
    configurations = list(simulator.dataset.configurations)
    with simulator.lock:
        simulator.dataset.configurations.clear()  # the PSA answers [] ...
    simulator.break_transfers("bad_json", path=CONFIGURATIONS + "/count")  # ... and its count cannot be read
    outcome = run_sync(pg_url, tenant, "full", instance=instance, psa=SMALL_PAGES)
    assert outcome.reason == (
        "tenant acme: extract assets failed: incomplete extraction: the PSA returned no records and its count "
        "could not be read, while 120 were staged before; nothing marked as vanished")
    assert live_rows(warehouse, "assets", tenant) == before

    simulator.mend_transfers()  # now the PSA says it has none: believed (the volume check still guards the load)
    believed = run_sync(pg_url, tenant, "full", instance=instance, psa=SMALL_PAGES)
    assert believed.stages["assets_raw"]["vanished"] == 120
    assert believed.failed_step == "assets_mapped" and "soft_delete_volume" in believed.reason
    assert live_rows(warehouse, "assets", tenant) == before

    with simulator.lock:
        simulator.dataset.configurations.extend(configurations)
    healed = run_sync(pg_url, tenant, "full", instance=instance, psa=SMALL_PAGES)
    assert healed.success, healed.reason
    assert live_rows(warehouse, "assets", tenant) == before


def test_an_incomplete_id_sweep_marks_nothing_vanished(warehouse, pg_url, instance, simulator, make_tenant):
    tenant = make_tenant("acme", simulator)
    before = synced(pg_url, instance, tenant, warehouse, simulator)
    # One configuration deleted: the PSA counts 119 where 120 are staged, so the nightly sweeps
    # the ids; the sweep reads the vendor's largest pages: all 119 ids on page 1, of which 50 arrive.
    with simulator.lock:
        simulator.dataset.configurations.pop()
    simulator.short_page(CONFIGURATIONS, 1, keep=50)
    outcome = run_sync(pg_url, tenant, "nightly", instance=instance, psa=SMALL_PAGES)
    assert outcome.failed_step == "assets_raw"
    assert "incomplete extraction: received 50 of the 119 the PSA counts" in outcome.reason
    assert staged_live(warehouse, tenant, "assets") == 120
    assert live_rows(warehouse, "assets", tenant) == before


def test_cli_says_it_in_one_line(warehouse, pg_url, simulator, monkeypatch, tmp_path, capsys):
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("HG_PSA_MAX_RETRIES", "1")
    credentials = []
    for key, value in DEMO_CREDENTIALS.items():
        monkeypatch.setenv(f"E2E_CW_{key.upper()}", value)
        credentials += ["--credential", f"{key}=env:E2E_CW_{key.upper()}"]
    assert main(["tenant", "add", "acme", "--source", "connectwise", "--base-url", simulator.base_url,
                 *credentials, "--database-url", pg_url]) == 0
    store_mapping(warehouse, "acme", TEST_MAPPING)
    assert main(["sync", "acme", "--full", "--database-url", pg_url]) == 0
    simulator.lie_about_count(CONFIGURATIONS, 1000)
    capsys.readouterr()
    assert main(["sync", "acme", "--full", "--database-url", pg_url]) == 2
    assert capsys.readouterr().err == (
        "hg-pipeline: tenant acme: extract assets failed: incomplete extraction: page 1 of 2 came back with "
        "120 of 1,000 records (received 120 of the 1,120 the PSA counts); nothing marked as vanished\n")
    assert staged_live(warehouse, "acme", "assets") == 120


def test_a_redirect_to_an_empty_list_is_not_an_empty_psa(warehouse, pg_url, instance, simulator, make_tenant):
    """Same origin, so the redirect is followed; but `[]` for the list and for its count proves nothing."""
    tenant = make_tenant("acme", simulator)
    synced(pg_url, instance, tenant, warehouse, simulator)
    before = live_rows(warehouse, "companies", tenant)
    companies = API_PREFIX + "/company/companies"
    original = simulator._answer

    def redirect_to_nothing(request):
        path = urlsplit(request.path).path.rstrip("/")
        if path not in (companies, companies + "/count"):
            return original(request)
        if "emptied=1" in request.path:
            return 200, [], {}
        return 302, {}, {"Location": request.path + ("&" if "?" in request.path else "?") + "emptied=1"}

    simulator._answer = redirect_to_nothing
    outcome = run_sync(pg_url, tenant, "full", instance=instance, psa=SMALL_PAGES)
    assert outcome.failed_step == "companies_raw"
    assert outcome.reason == (
        f"tenant acme: extract companies failed: incomplete extraction: the PSA returned no records and its count "
        f"could not be read, while {len(simulator.dataset.companies)} were staged before; nothing marked as vanished")
    assert live_rows(warehouse, "companies", tenant) == before
    assert staged_live(warehouse, tenant, "companies") == len(simulator.dataset.companies)
