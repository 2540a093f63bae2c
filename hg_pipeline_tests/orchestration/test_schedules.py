"""The nightly and weekly schedules and the run-launching sensors, evaluated with Dagster's
testing helpers on a test instance, and the instance configuration (dagster.yaml) they rely on."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pytest
from dagster import (
    DagsterInstance,
    QueuedRunCoordinator,
    build_schedule_context,
    build_sensor_context,
    instance_for_test,
    validate_run_config,
)

from hg_pipeline.definitions import build_definitions, defs
from hg_pipeline.extract import stage_pages
from hg_pipeline.mapping.document import default_document
from hg_pipeline.orchestration.home import prepare_home
from hg_pipeline.orchestration.resources import PsaResource, WarehouseResource
from hg_pipeline.orchestration.jobs import NIGHTLY_OPS_CONFIG, psa_host
from hg_pipeline.orchestration.schedules import nightly_resync_schedule, weekly_reconcile_schedule
from hg_pipeline.orchestration.sensors import mapping_change_sensor, tenant_partitions_sensor
from hg_pipeline.orchestration.run import run_sync
from hg_pipeline.warehouse.mappings import store_mapping
from hg_pipeline_tests.orchestration.scenario import TEST_MAPPING
from hg_pipeline.warehouse.tenants import Tenant, add_tenant

CW_REFS = {"company_id": "env:CW_CO", "public_key": "env:CW_PUB", "private_key": "env:CW_PRIV",
           "client_id": "env:CW_CLIENT"}
NIGHT = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)  # a Monday
SUNDAY = datetime(2026, 3, 1, 2, 0, tzinfo=timezone.utc)


def connectwise(tenant_id: str, base_url: str) -> Tenant:
    return Tenant(tenant_id=tenant_id, name=tenant_id.title(), source="connectwise", base_url=base_url,
                  credentials=CW_REFS, notify_email=f"ops@{tenant_id}.example")


@pytest.fixture
def instance():
    with instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture
def resources(pg_url):
    return {"warehouse": WarehouseResource(database_url=pg_url)}


@pytest.fixture
def repository(pg_url):
    """The code location with the test warehouse: what resolves partitioned run requests."""
    return build_definitions({"warehouse": WarehouseResource(database_url=pg_url),
                              "psa": PsaResource()}).get_repository_def()


@pytest.fixture
def msp(warehouse, instance):
    """Five tenants: two on one ConnectWise host, one on another, one without a mapping, one not
    yet a partition, one import tenant (no PSA)."""
    for tenant in (
        connectwise("acme", "https://na.myconnectwise.net"),
        connectwise("globex", "https://NA.myconnectwise.net/v4_6_release/"),
        connectwise("initech", "https://eu.myconnectwise.net:8443"),
        connectwise("nomap", "https://au.myconnectwise.net"),
        connectwise("newbie", "https://na.myconnectwise.net"),
        Tenant(tenant_id="legacy", name="Legacy", source="import", base_url=None),
    ):
        add_tenant(warehouse, tenant)
    for tenant_id in ("acme", "globex", "initech", "newbie", "legacy"):
        store_mapping(warehouse, tenant_id, default_document())
    instance.add_dynamic_partitions("tenants", ["acme", "globex", "initech", "nomap", "legacy"])
    return warehouse


# --------------------------------------------------------------------------- nightly schedule


def _schedule_tick(instance, resources, repository, when, schedule_def=nightly_resync_schedule):
    # `with`: the context opens its own instance from the ref and must close it (a context left
    # open resets Dagster's current-instance state whenever it is garbage-collected).
    with build_schedule_context(instance=instance, scheduled_execution_time=when, resources=resources,
                                repository_def=repository) as context:
        return schedule_def.evaluate_tick(context)


def test_nightly_schedule_requests_one_resync_per_mapped_tenant(msp, instance, resources, repository):
    result = _schedule_tick(instance, resources, repository, NIGHT)

    by_tenant = {request.partition_key: request for request in result.run_requests}
    assert sorted(by_tenant) == ["acme", "globex", "initech"]
    for tenant_id, request in by_tenant.items():
        assert request.run_key == f"nightly-{tenant_id}-2026-03-02"
        assert request.tags["hg/tenant"] == tenant_id
        assert request.tags["hg/kind"] == "nightly"
        assert request.tags["dagster/partition"] == tenant_id
        assert request.run_config["ops"]["companies_raw"]["config"] == {"incremental": True}
    # Tenants of one PSA host share a tag value: the queue runs one of them at a time.
    assert by_tenant["acme"].tags["hg/psa_host"] == "na.myconnectwise.net:443"
    assert by_tenant["globex"].tags["hg/psa_host"] == "na.myconnectwise.net:443"
    assert by_tenant["initech"].tags["hg/psa_host"] == "eu.myconnectwise.net:8443"
    assert nightly_resync_schedule.job_name == "nightly_resync"
    assert nightly_resync_schedule.cron_schedule == "0 2 * * 1-6"  # Sunday: weekly_reconcile
    assert nightly_resync_schedule.execution_timezone == "UTC"


def test_nightly_run_keys_are_stable_per_night(msp, instance, resources, repository):
    def keys(when):
        return sorted(r.run_key for r in _schedule_tick(instance, resources, repository, when).run_requests)

    assert keys(NIGHT) == keys(NIGHT.replace(minute=3))  # a retried tick launches nothing twice
    assert keys(NIGHT.replace(day=3)) == ["nightly-acme-2026-03-03", "nightly-globex-2026-03-03",
                                          "nightly-initech-2026-03-03"]


def test_nightly_schedule_skips_without_ready_tenants(warehouse, instance, resources, repository):
    result = _schedule_tick(instance, resources, repository, NIGHT)
    assert not result.run_requests
    assert "no tenant is ready" in result.skip_message


def test_nightly_schedule_is_registered_and_on(instance):
    assert defs.resolve_schedule_def("nightly_resync").default_status.value == "RUNNING"


# --------------------------------------------------------------------------- weekly reconcile


def test_weekly_reconcile_requests_one_full_sync_per_mapped_tenant(msp, instance, resources, repository):
    result = _schedule_tick(instance, resources, repository, SUNDAY, weekly_reconcile_schedule)

    by_tenant = {request.partition_key: request for request in result.run_requests}
    assert sorted(by_tenant) == ["acme", "globex", "initech"]  # not nomap, newbie, legacy
    for tenant_id, request in by_tenant.items():
        assert request.run_key == f"reconcile-{tenant_id}-2026-03-01"
        assert request.tags["hg/tenant"] == tenant_id
        assert request.tags["hg/kind"] == "full"
        assert request.tags["dagster/partition"] == tenant_id
        # Every extraction reads everything, and the config is one the full_sync job accepts.
        assert request.run_config["ops"] == {op: {"config": {"incremental": False}} for op in NIGHTLY_OPS_CONFIG}
        assert validate_run_config(repository.get_job("full_sync"), request.run_config)
    assert by_tenant["acme"].tags["hg/psa_host"] == "na.myconnectwise.net:443"
    assert by_tenant["globex"].tags["hg/psa_host"] == "na.myconnectwise.net:443"
    assert by_tenant["initech"].tags["hg/psa_host"] == "eu.myconnectwise.net:8443"
    assert weekly_reconcile_schedule.job_name == "full_sync"
    assert weekly_reconcile_schedule.execution_timezone == "UTC"


def test_weekly_reconcile_run_keys_are_unique_per_tenant_and_day(msp, instance, resources, repository):
    def keys(when):
        return sorted(r.run_key for r in
                      _schedule_tick(instance, resources, repository, when, weekly_reconcile_schedule).run_requests)

    assert keys(SUNDAY) == keys(SUNDAY.replace(minute=3))
    assert keys(SUNDAY.replace(day=8)) == ["reconcile-acme-2026-03-08", "reconcile-globex-2026-03-08",
                                           "reconcile-initech-2026-03-08"]


def test_weekly_reconcile_skips_without_ready_tenants(warehouse, instance, resources, repository):
    result = _schedule_tick(instance, resources, repository, SUNDAY, weekly_reconcile_schedule)
    assert not result.run_requests
    assert "no tenant is ready for a weekly reconcile" in result.skip_message


def test_every_night_exactly_one_schedule_syncs_the_tenants():
    """Both at 02:00 UTC: nightly_resync Monday to Saturday, weekly_reconcile on Sunday."""
    def days(schedule_def):
        minute, hour, day_of_month, month, day_of_week = schedule_def.cron_schedule.split()
        assert (minute, hour, day_of_month, month, schedule_def.execution_timezone) == ("0", "2", "*", "*", "UTC")
        first, _, last = day_of_week.partition("-")
        return set(range(int(first), int(last or first) + 1))

    nightly, weekly = days(nightly_resync_schedule), days(weekly_reconcile_schedule)
    assert weekly == {0}  # cron's Sunday
    assert not nightly & weekly
    assert nightly | weekly == set(range(7))


def test_weekly_reconcile_is_registered_and_on(instance):
    schedule_def = defs.resolve_schedule_def("weekly_reconcile")
    assert schedule_def.default_status.value == "RUNNING"
    assert schedule_def.job_name == "full_sync"


@pytest.mark.parametrize("url, host", [
    ("https://na.myconnectwise.net", "na.myconnectwise.net:443"),
    ("http://127.0.0.1:8101", "127.0.0.1:8101"),
    ("https://API-NA.myconnectwise.net/v4_6_release/apis/3.0", "api-na.myconnectwise.net:443"),
    (None, None),
    ("", None),
])
def test_psa_host(url, host):
    assert psa_host(url) == host


# --------------------------------------------------------------------------- run-launching sensors


def _sensor(sensor_def, instance, repository, resources, cursor=None):
    # instance_ref too: without it the context cannot resolve dynamic partitions of run requests
    with build_sensor_context(instance=instance, instance_ref=instance.get_ref(), cursor=cursor,
                              repository_def=repository, resources=resources,
                              sensor_name=sensor_def.name) as context:
        return sensor_def.evaluate_tick(context)


def test_tenant_sensor_adds_partitions_and_initial_syncs(warehouse, instance, resources, repository):
    add_tenant(warehouse, connectwise("acme", "https://na.myconnectwise.net"))
    add_tenant(warehouse, connectwise("initech", "https://eu.myconnectwise.net:8443"))
    result = _sensor(tenant_partitions_sensor, instance, repository, resources)

    assert [(r.partitions_def_name, list(r.partition_keys)) for r in result.dynamic_partitions_requests] == [
        ("tenants", ["acme", "initech"])]
    assert sorted((r.partition_key, r.run_key, r.tags["hg/tenant"], r.tags["hg/kind"])
                  for r in result.run_requests) == [
        ("acme", "initial-acme", "acme", "initial"), ("initech", "initial-initech", "initech", "initial")]
    # Nothing new: nothing requested.
    again = _sensor(tenant_partitions_sensor, instance, repository, resources, result.cursor)
    assert not again.run_requests


def test_initial_syncs_carry_the_psa_host_tag(warehouse, instance, resources, repository):
    add_tenant(warehouse, connectwise("acme", "https://na.myconnectwise.net"))
    result = _sensor(tenant_partitions_sensor, instance, repository, resources)
    assert [r.tags.get("hg/psa_host") for r in result.run_requests] == ["na.myconnectwise.net:443"]


def test_mapping_sensor_requests_one_remap_per_new_version(warehouse, instance, resources, repository):
    add_tenant(warehouse, connectwise("acme", "https://na.myconnectwise.net"))
    instance.add_dynamic_partitions("tenants", ["acme"])
    stage_pages(warehouse, "acme", "companies", [[{"id": 1, "name": "Globex"}]],
                lambda entity, payload: {"psa_id": str(payload["id"]), "name": payload["name"]},
                lambda payload: str(payload["id"]), "test-run")
    store_mapping(warehouse, "acme", default_document())

    first = _sensor(mapping_change_sensor, instance, repository, resources)
    assert [(r.partition_key, r.run_key, r.tags["hg/tenant"], r.tags["hg/kind"]) for r in first.run_requests] == [
        ("acme", "remap-acme-v1", "acme", "remap")]
    assert isinstance(_sensor(mapping_change_sensor, instance, repository, resources, first.cursor).skip_message, str)
    store_mapping(warehouse, "acme", default_document())
    second = _sensor(mapping_change_sensor, instance, repository, resources, first.cursor)
    assert [r.run_key for r in second.run_requests] == ["remap-acme-v2"]


# --------------------------------------------------------------------------- dagster.yaml


def _instance_from_yaml(home: Path) -> DagsterInstance:
    prepare_home(home, os.environ)  # what hg-pipeline writes into its home
    return DagsterInstance.from_config(str(home))


def test_dagster_yaml_queues_runs_one_per_psa_host(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_PG_URL", raising=False)
    monkeypatch.delenv("DAGSTER_PG_HOST", raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    instance = _instance_from_yaml(tmp_path)
    try:
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        assert {"key": "hg/psa_host", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert (tmp_path / "history").is_dir()
    finally:
        instance.dispose()


def test_dagster_yaml_uses_postgres_when_dagster_pg_url_is_set(tmp_path, monkeypatch, pg_url):
    # dagster-postgres tables in the test database's public schema; the warehouse lives in `hg`.
    monkeypatch.setenv("DAGSTER_PG_URL", pg_url.replace("postgresql+psycopg://", "postgresql://"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    instance = _instance_from_yaml(tmp_path)
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        instance.add_dynamic_partitions("tenants", ["acme"])
        assert instance.get_dynamic_partitions("tenants") == ["acme"]
    finally:
        instance.dispose()


def test_sensors_skip_what_a_sync_already_did(pg_url, warehouse, instance, resources, repository, simulator,
                                              make_tenant):
    """As after `bash scripts/demo.sh`: the CLI's full sync brought the reference data and applied
    mapping v1, so opening the UI starts neither an initial sync nor a remap; a new version does."""
    tenant = make_tenant("acme", simulator)  # stores mapping version 1
    assert run_sync(pg_url, tenant, "full", instance=instance).success
    partitions = _sensor(tenant_partitions_sensor, instance, repository, resources)
    assert not partitions.run_requests
    first = _sensor(mapping_change_sensor, instance, repository, resources)
    assert not first.run_requests
    store_mapping(warehouse, tenant, TEST_MAPPING + "\n# v2\n")
    second = _sensor(mapping_change_sensor, instance, repository, resources, first.cursor)
    assert [r.run_key for r in second.run_requests] == [f"remap-{tenant}-v2"]
    assert run_sync(pg_url, tenant, "remap", instance=instance).success  # e.g. from the CLI
    store_mapping(warehouse, tenant, TEST_MAPPING + "\n# v3\n")
    assert run_sync(pg_url, tenant, "remap", instance=instance).success
    assert not _sensor(mapping_change_sensor, instance, repository, resources).run_requests  # v3 applied


def test_a_tenant_whose_initial_sync_failed_gets_one_from_the_sensor(pg_url, warehouse, instance, resources,
                                                                       repository, simulator, make_tenant,
                                                                       monkeypatch):
    tenant = make_tenant("acme", simulator, mapping=None)
    monkeypatch.setenv("HG_PSA_MAX_RETRIES", "0")
    simulator.stop()
    assert not run_sync(pg_url, tenant, "initial", instance=instance).success
    result = _sensor(tenant_partitions_sensor, instance, repository, resources)
    assert [r.run_key for r in result.run_requests] == [f"initial-{tenant}"]
