"""The notification sensors against real runs: a ConnectWise simulator, PostgreSQL, a Dagster
test instance, and a real SMTP server on loopback (aiosmtpd) that records what it receives.

Sensors are evaluated the way the daemon does it (`evaluate_tick`, keeping each sensor's
cursor between ticks), so "none twice" is checked on Dagster's own cursors.
"""

from __future__ import annotations

import re
import time

import pytest
from dagster import DagsterEvent, DagsterEventType, build_sensor_context, instance_for_test
from sqlalchemy import select

from hg_pipeline.definitions import build_definitions
from hg_pipeline.mapping.document import default_document
from hg_pipeline.orchestration.notify import (
    sync_canceled_sensor,
    sync_failed_sensor,
    sync_overdue_sensor,
    sync_started_sensor,
    sync_succeeded_sensor,
)
from hg_pipeline.orchestration.resources import PsaResource, WarehouseResource
from hg_pipeline.orchestration.run import run_sync
from hg_pipeline.simulators.connectwise import DEMO_CREDENTIALS, ConnectWiseSimulator
from hg_pipeline.simulators.datasets import generate
from hg_pipeline.warehouse import db, locks
from hg_pipeline.warehouse.mappings import store_mapping
from hg_pipeline.warehouse.tables import sync_runs
from hg_pipeline.warehouse.tenants import Tenant, add_tenant
from hg_pipeline_tests.orchestration.scenario import TEST_MAPPING
from hg_pipeline_tests.smtp import closed_port, free_port, smtp_server  # noqa: F401  (fixtures)

TENANT = "acme"
RECIPIENT = "ops@acme.example"
ENV = {key: f"HG_TEST_NOTIFY_CW_{key.upper()}" for key in DEMO_CREDENTIALS}
WRONG_PRIVATE_KEY = "wrong-private-key-s3cr3t"
RUN_SENSORS = (sync_started_sensor, sync_succeeded_sensor, sync_failed_sensor, sync_canceled_sensor)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def mailbox(smtp_server, monkeypatch):
    """The SMTP server the sensors send to (through the HG_SMTP_* variables)."""
    monkeypatch.setenv("HG_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("HG_SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("HG_SMTP_FROM", "highground-sync@test.local")
    return smtp_server.handler


@pytest.fixture
def simulator():
    dataset = generate("small", seed=1)
    dataset.catalog[0]["price"] = "twenty"  # one product the extract must quarantine
    with ConnectWiseSimulator(dataset) as sim:
        yield sim


@pytest.fixture
def tenant(warehouse, simulator, monkeypatch):
    for key, var in ENV.items():
        monkeypatch.setenv(var, DEMO_CREDENTIALS[key])
    monkeypatch.delenv("HG_SYNC_OVERDUE_HOURS", raising=False)
    add_tenant(warehouse, Tenant(
        tenant_id=TENANT, name="Acme IT", source="connectwise", base_url=simulator.base_url,
        credentials={key: f"env:{var}" for key, var in ENV.items()}, notify_email=RECIPIENT,
    ))
    return TENANT


@pytest.fixture
def instance():
    with instance_for_test() as test_instance:
        yield test_instance


class Daemon:
    """Evaluates sensors like the sensor daemon: one stored cursor per sensor, across ticks."""

    def __init__(self, instance, pg_url):
        self.instance = instance
        self.resources = {"warehouse": WarehouseResource(database_url=pg_url)}
        self.cursors: dict[str, str | None] = {}

    def tick(self, *sensor_defs):
        for sensor_def in sensor_defs:
            with build_sensor_context(instance=self.instance, cursor=self.cursors.get(sensor_def.name),
                                      resources=self.resources, sensor_name=sensor_def.name) as context:
                result = sensor_def.evaluate_tick(context)
            self.cursors[sensor_def.name] = result.cursor


@pytest.fixture
def daemon(instance, pg_url):
    sensors = Daemon(instance, pg_url)
    sensors.tick(*RUN_SENSORS)  # sensors switched on before any run: cursors start here
    return sensors


def sync_rows(engine):
    with engine.connect() as conn:
        return conn.execute(select(sync_runs).order_by(sync_runs.c.id)).mappings().all()


def body(message) -> str:
    return message.get_content().replace("\r\n", "\n")


# --------------------------------------------------------------------------- e-mails


def test_each_email_arrives_once_with_its_content(pg_url, warehouse, tenant, instance, daemon, mailbox,
                                                   monkeypatch):
    initial = run_sync(pg_url, tenant, "initial", instance=instance)
    assert initial.success
    daemon.tick(*RUN_SENSORS)
    daemon.tick(*RUN_SENSORS)
    assert mailbox.subjects() == ["[HighGround] Acme IT (acme): data ready to map"]
    ready = mailbox.messages[0]
    assert ready["To"] == RECIPIENT and ready["From"] == "highground-sync@test.local"
    assert re.search(r"^companies\s+40$", body(ready), re.M)
    assert re.search(r"^members\s+12$", body(ready), re.M)
    assert "hg-pipeline mapping pending acme" in body(ready)
    worklist = initial.stages["mapping_worklist"]  # what no rule covers yet, read from the run's metadata
    assert worklist["types_waiting"] > 0 and worklist["records_waiting"] > 0
    assert (f"{worklist['types_waiting']} types and categories and {worklist['records_waiting']:,} records wait "
            "for a decision.") in body(ready)
    assert "hg-pipeline mapping template acme" in body(ready)

    store_mapping(warehouse, tenant, default_document())
    full = run_sync(pg_url, tenant, "full", instance=instance)
    assert full.success
    daemon.tick(*RUN_SENSORS)
    daemon.tick(*RUN_SENSORS)
    assert len(mailbox.messages) == 2
    completed = mailbox.messages[1]
    assert completed["Subject"] == "[HighGround] Acme IT (acme): full sync completed"
    text = body(completed)
    loaded = full.stages["companies"]
    # entity, loaded, inserted, updated, soft deleted, pending, ignored
    assert re.search(rf"^companies\s+{loaded['rows']}\s+{loaded['inserted']}\s+0\s+0\s+0\s+"
                     rf"{full.stages['companies_mapped']['ignored']}$", text, re.M)
    for entity in ("contacts", "products", "members", "assets"):
        assert re.search(rf"^{entity}\s+\d", text, re.M)
    assert "Quarantined: 1 record (left out of the load" in text
    assert re.search(r"Duration: \d+m \d\ds", text)

    monkeypatch.setenv(ENV["private_key"], WRONG_PRIVATE_KEY)  # the PSA answers 401
    failed = run_sync(pg_url, tenant, "full", instance=instance)
    assert not failed.success
    daemon.tick(*RUN_SENSORS)
    daemon.tick(*RUN_SENSORS)
    assert len(mailbox.messages) == 3
    failure = mailbox.messages[2]
    assert failure["Subject"] == "[HighGround] Acme IT (acme): full sync failed"
    text = body(failure)
    step = re.search(r"^Failing step: (\S+)", text, re.M).group(1)
    assert step == failed.failed_step and step.endswith("_raw")
    reason = re.search(r"^Reason: (.+)$", text, re.M).group(1)
    assert "401" in reason and "extract" in reason
    assert WRONG_PRIVATE_KEY not in failure.as_string()

    # Ticks on a quiet instance send nothing more.
    daemon.tick(*RUN_SENSORS, *RUN_SENSORS)
    assert len(mailbox.messages) == 3
    # `hg-pipeline sync` recorded its own runs; the sensors added no row of their own.
    rows = sync_rows(warehouse)
    assert [(r["kind"], r["status"], r["dagster_run_id"]) for r in rows] == [
        ("initial", "success", initial.run_id), ("full", "success", full.run_id), ("full", "failure", failed.run_id)]


def test_overdue_email_once_per_run(pg_url, tenant, instance, mailbox, monkeypatch):
    daemon = Daemon(instance, pg_url)
    job = build_definitions({"warehouse": WarehouseResource(database_url=pg_url),
                             "psa": PsaResource()}).resolve_job_def("nightly_resync")
    run = instance.create_run_for_job(job_def=job, tags={"hg/tenant": tenant, "hg/kind": "nightly",
                                                         "dagster/partition": tenant})
    instance.report_dagster_event(
        DagsterEvent(event_type_value=DagsterEventType.RUN_START.value, job_name=job.name), run_id=run.run_id)

    engine = db.connect(pg_url)
    alive = locks.run_alive_name(run.run_id)
    locks.acquire(engine, alive)  # the run's process is alive (a run worker holds this lock)
    daemon.tick(sync_overdue_sensor)  # 8 hours by default: not overdue yet
    assert mailbox.messages == []

    monkeypatch.setenv("HG_SYNC_OVERDUE_HOURS", "0.0001")  # 0.36 s
    time.sleep(0.5)
    locks.release(engine, alive)  # a dead run is not overdue: `abandoned_runs` fails it instead
    daemon.tick(sync_overdue_sensor)
    assert mailbox.messages == []
    locks.acquire(engine, alive)
    daemon.tick(sync_overdue_sensor)
    daemon.tick(sync_overdue_sensor)
    locks.release(engine, alive)
    assert mailbox.subjects() == ["[HighGround] Acme IT (acme): nightly sync overdue"]
    assert "running for more than 0.0001 hours" in body(mailbox.messages[0])
    assert mailbox.messages[0]["To"] == RECIPIENT

    instance.report_run_canceled(run)  # finished runs leave the cursor and are never overdue
    daemon.tick(sync_overdue_sensor)
    assert daemon.cursors["sync_overdue"] == "[]"
    assert len(mailbox.messages) == 1


# --------------------------------------------------------------------------- sync_runs


def test_sensors_record_runs_dagster_launches_once(pg_url, warehouse, tenant, instance, daemon, mailbox,
                                                    monkeypatch):
    """A run not started by `hg-pipeline sync` (UI, schedule, backfill) gets its sync_runs row from the
    sensors: `running` at start, then its outcome; further ticks change nothing."""
    job = build_definitions({"warehouse": WarehouseResource(database_url=pg_url),
                             "psa": PsaResource()}).resolve_job_def("initial_sync")
    instance.add_dynamic_partitions("tenants", [tenant])  # what the tenant_partitions sensor does
    ok = job.execute_in_process(instance=instance, partition_key=tenant, raise_on_error=False)
    assert ok.success
    daemon.tick(sync_started_sensor)
    [row] = sync_rows(warehouse)
    assert (row["tenant_id"], row["kind"], row["status"], row["dagster_run_id"]) == (
        tenant, "initial", "running", ok.run_id)
    assert row["finished_at"] is None

    monkeypatch.setenv(ENV["private_key"], WRONG_PRIVATE_KEY)
    bad = job.execute_in_process(instance=instance, partition_key=tenant, raise_on_error=False)
    assert not bad.success
    daemon.tick(*RUN_SENSORS)
    daemon.tick(*RUN_SENSORS)
    rows = sync_rows(warehouse)
    assert [(r["dagster_run_id"], r["status"]) for r in rows] == [(ok.run_id, "success"), (bad.run_id, "failure")]
    record = instance.get_run_record_by_id(ok.run_id)
    assert abs(rows[0]["started_at"].timestamp() - record.start_time) < 0.01
    assert abs(rows[0]["finished_at"].timestamp() - record.end_time) < 0.01
    assert "401" in rows[1]["error"] and rows[1]["error"].split(":")[0].endswith("_raw")
    assert WRONG_PRIVATE_KEY not in rows[1]["error"]
    assert mailbox.subjects() == ["[HighGround] Acme IT (acme): data ready to map",
                                  "[HighGround] Acme IT (acme): initial sync failed"]


# --------------------------------------------------------------------------- SMTP trouble


def test_smtp_trouble_never_fails_anything(pg_url, warehouse, tenant, instance, daemon, mailbox, monkeypatch):
    mailbox.fail_first = 1  # a 451: the send is retried and goes through
    monkeypatch.setenv(ENV["private_key"], WRONG_PRIVATE_KEY)
    first = run_sync(pg_url, tenant, "initial", instance=instance)
    daemon.tick(*RUN_SENSORS)
    assert mailbox.attempts == 2
    assert mailbox.subjects() == ["[HighGround] Acme IT (acme): initial sync failed"]

    monkeypatch.setenv("HG_SMTP_PORT", str(free_port()))  # nobody listens: tries, logs, gives up
    second = run_sync(pg_url, tenant, "initial", instance=instance)
    daemon.tick(*RUN_SENSORS)
    monkeypatch.delenv("HG_SMTP_HOST")  # e-mail off: skipped
    third = run_sync(pg_url, tenant, "initial", instance=instance)
    daemon.tick(*RUN_SENSORS)

    assert len(mailbox.messages) == 1
    assert [(r["dagster_run_id"], r["status"]) for r in sync_rows(warehouse)] == [
        (first.run_id, "failure"), (second.run_id, "failure"), (third.run_id, "failure")]


def test_failure_email_names_the_failing_expectation(pg_url, warehouse, tenant, simulator, instance, daemon,
                                                     mailbox):
    """A blocking check fails (a linked HighGround company keeps a legacy type): the e-mail says
    which check on which asset failed, and which expectation."""
    from datetime import datetime, timezone

    from hg_pipeline.warehouse.tables import companies

    now = datetime.now(timezone.utc)
    with warehouse.begin() as conn:
        conn.execute(companies.insert(), {"id": "hg-legacy", "tenant_id": tenant, "name": "Legacy Reseller",
                                          "hg_type": "reseller", "origin": "highground",
                                          "created_at": now, "updated_at": now})
    competitor = next(c for c in simulator.dataset.companies if c["types"][0]["name"] == "Competitor")
    store_mapping(warehouse, tenant, TEST_MAPPING.replace(
        "  types: {Customer", f'  records: {{"{competitor["id"]}": {{action: map, to: hg-legacy}}}}\n  types: {{Customer'))
    failed = run_sync(pg_url, tenant, "full", instance=instance)
    assert not failed.success
    daemon.tick(*RUN_SENSORS)
    assert mailbox.subjects() == ["[HighGround] Acme IT (acme): full sync failed"]
    text = body(mailbox.messages[0])
    assert re.search(r"^Failing step: companies_mapped", text, re.M)
    reason = re.search(r"^Reason: (.+)$", text, re.M).group(1)
    assert "check valid on companies_mapped failed" in reason and "hg_type not in set" in reason


def test_completed_email_counts_records_quarantined_at_extract_and_at_map():
    from hg_pipeline.orchestration.notify import RunReport

    report = RunReport(stages={"products_raw": {"quarantined": 1, "received": 60},
                               "contacts_mapped": {"quarantined": 2, "mapped": 90}, "contacts": {"rows": 90}})
    assert report.quarantined == 3
