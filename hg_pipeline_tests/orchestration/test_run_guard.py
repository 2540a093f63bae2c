"""One sync per tenant at a time, and no ghost of a killed sync, walked with the real command
in separate processes against a simulator on loopback and the test PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus, build_sensor_context
from sqlalchemy import select

from hg_pipeline.definitions import build_definitions
from hg_pipeline.orchestration.home import prepare_home
from hg_pipeline.orchestration.notify import abandoned_runs_sensor, sync_failed_sensor, sync_overdue_sensor
from hg_pipeline.orchestration.resources import PsaResource, WarehouseResource
from hg_pipeline.orchestration.run import run_sync
from hg_pipeline.orchestration.run_guard import ABANDONED
from hg_pipeline.warehouse import locks
from hg_pipeline.warehouse.tables import LOADED_TABLES, sync_runs
from hg_pipeline_tests.smtp import smtp_server  # noqa: F401  (fixture)

BIN = Path(sys.executable).parent
CONTENT = {  # what a row says, whatever its tenant
    "companies": ("psa_id", "name", "hg_type", "deleted_at"),
    "contacts": ("psa_id", "first_name", "last_name", "email", "deleted_at"),
    "products": ("psa_id", "name", "sku", "mapping_source", "deleted_at"),
    "members": ("psa_id", "name", "email", "deleted_at"),
    "assets": ("psa_id", "name", "asset_type", "deleted_at"),
}


@pytest.fixture
def home(tmp_path):
    return prepare_home(tmp_path / "dagster", os.environ)


def hg(pg_url, home, *args, **popen):
    """`hg-pipeline ARGS` in its own process, as a user runs it."""
    env = dict(os.environ, DAGSTER_HOME=str(home), **popen.pop("env", {}))
    return subprocess.Popen([str(BIN / "hg-pipeline"), *args, "--database-url", pg_url], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def rows_of(engine, tenant_id):
    with engine.connect() as conn:
        return {entity: sorted(tuple(str(v) if k != "deleted_at" else v is None for k, v in row.items())
                               for row in conn.execute(select(*(LOADED_TABLES[entity].c[c] for c in columns))
                                                       .where(LOADED_TABLES[entity].c.tenant_id == tenant_id))
                               .mappings())
                for entity, columns in CONTENT.items()}


def sync_row_states(engine, tenant_id):
    with engine.connect() as conn:
        return conn.execute(select(sync_runs.c.dagster_run_id, sync_runs.c.status, sync_runs.c.error)
                            .where(sync_runs.c.tenant_id == tenant_id).order_by(sync_runs.c.id)).all()


def test_a_second_sync_of_the_tenant_is_refused_with_one_line(pg_url, warehouse, simulator, make_tenant, home):
    # No rate of its own, so HG_PSA_REQUESTS_PER_SECOND paces it: the first sync outlasts the
    # second's start (a tenant rate would win over the variable and the first might be done).
    tenant = make_tenant("acme", simulator, requests_per_second=None)
    throttled = {"HG_PSA_REQUESTS_PER_SECOND": "3", "HG_TENANT_LOCK_WAIT_SECONDS": "0"}
    first = hg(pg_url, home, "sync", tenant, "--full", env=throttled)
    deadline = time.monotonic() + 60
    while not locks.is_held_elsewhere(warehouse, locks.tenant_lock_name(tenant)):
        assert time.monotonic() < deadline and first.poll() is None, first.communicate()
        time.sleep(0.05)
    second = hg(pg_url, home, "sync", tenant, "--full", env=throttled)
    out2, err2 = second.communicate(timeout=120)
    out1, err1 = first.communicate(timeout=300)
    assert first.returncode == 0, err1
    assert second.returncode == 2
    [line] = err2.splitlines()
    first_run = sync_row_states(warehouse, tenant)[0].dagster_run_id
    assert line.startswith(f"hg-pipeline: tenant {tenant}: a full sync of {tenant} is already running "
                           f"(dagster run {first_run})")
    assert "dagster._" not in err2 and "Traceback" not in err2 and "Error" not in line
    states = sync_row_states(warehouse, tenant)
    assert [s.status for s in states] == ["success", "failure"]
    assert "already running" in states[1].error and "\n" not in states[1].error
    # The refused run wrote nothing: the rows are exactly those of one sync.
    reference = make_tenant("reference", simulator)
    assert run_sync(pg_url, reference, "full", instance=DagsterInstance.from_config(str(home))).success
    assert rows_of(warehouse, tenant) == rows_of(warehouse, reference)


def test_a_second_sync_waits_for_the_first_when_allowed(pg_url, warehouse, simulator, make_tenant, home):
    tenant = make_tenant("acme", simulator, requests_per_second=None)
    env = {"HG_PSA_REQUESTS_PER_SECOND": "5", "HG_TENANT_LOCK_WAIT_SECONDS": "120"}
    first = hg(pg_url, home, "sync", tenant, "--full", env=env)
    while not locks.is_held_elsewhere(warehouse, locks.tenant_lock_name(tenant)):
        assert first.poll() is None, first.communicate()
        time.sleep(0.05)
    second = hg(pg_url, home, "sync", tenant, "--remap", env=env)
    assert second.wait(timeout=300) == 0, second.communicate()
    assert first.wait(timeout=300) == 0, first.communicate()
    states = sync_row_states(warehouse, tenant)
    assert [s.status for s in states] == ["success", "success"]


def test_a_killed_sync_is_marked_abandoned_and_the_next_one_converges(pg_url, warehouse, simulator,
                                                                      make_tenant, home):
    tenant = make_tenant("acme", simulator, requests_per_second=None)
    victim = hg(pg_url, home, "sync", tenant, "--full", env={"HG_PSA_REQUESTS_PER_SECOND": "4"})
    companies = LOADED_TABLES["companies"]
    deadline = time.monotonic() + 120
    while True:  # kill it once a load has begun writing
        assert victim.poll() is None and time.monotonic() < deadline, victim.communicate()
        with warehouse.connect() as conn:
            if conn.scalar(select(companies.c.id).where(companies.c.tenant_id == tenant).limit(1)):
                break
        time.sleep(0.02)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    [(killed_run, status, _)] = sync_row_states(warehouse, tenant)
    assert status == "running"  # nothing could finish it

    again = hg(pg_url, home, "sync", tenant, "--full")
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    states = sync_row_states(warehouse, tenant)
    assert [(s.dagster_run_id, s.status, s.error) for s in states[:1]] == [(killed_run, "failure", f"run: {ABANDONED}")]
    assert states[1].status == "success"
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_run_by_id(killed_run).status == DagsterRunStatus.FAILURE
        reference = make_tenant("reference", simulator)
        assert run_sync(pg_url, reference, "full", instance=instance).success
    assert rows_of(warehouse, tenant) == rows_of(warehouse, reference)


def test_the_sensor_fails_a_dead_run_once_and_no_overdue_mail_follows(pg_url, warehouse, simulator, make_tenant,
                                                                      home, smtp_server, monkeypatch):  # noqa: F811
    tenant = make_tenant("acme", simulator)
    mailbox = smtp_server.handler
    monkeypatch.setenv("HG_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("HG_SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("HG_SYNC_OVERDUE_HOURS", "0.0001")
    with DagsterInstance.from_config(str(home)) as instance:
        job = build_definitions({"warehouse": WarehouseResource(database_url=pg_url),
                                 "psa": PsaResource()}).resolve_job_def("full_sync")
        run = instance.create_run_for_job(job_def=job, tags={"dagster/partition": tenant})
        instance.handle_run_event(run.run_id, _run_start(job.name))
        with warehouse.begin() as conn:  # what its process wrote before it died
            conn.execute(sync_runs.insert().values(tenant_id=tenant, kind="full", status="running",
                                                   started_at=datetime.now(timezone.utc) - timedelta(minutes=5),
                                                   dagster_run_id=run.run_id))
        resources = {"warehouse": WarehouseResource(database_url=pg_url)}
        cursors = {}

        def tick(*sensor_defs):
            for sensor_def in sensor_defs:
                with build_sensor_context(instance=instance, resources=resources, cursor=cursors.get(sensor_def.name),
                                          sensor_name=sensor_def.name) as context:
                    cursors[sensor_def.name] = sensor_def.evaluate_tick(context).cursor

        tick(sync_failed_sensor)  # the daemon was watching before the run died
        for _ in range(2):
            tick(sync_overdue_sensor, abandoned_runs_sensor, sync_failed_sensor)
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
    [(_, status, error)] = sync_row_states(warehouse, tenant)
    assert (status, error) == ("failure", f"run: {ABANDONED}")
    assert mailbox.subjects() == ["[HighGround] Acme (acme): full sync failed"]
    assert "abandoned" in mailbox.messages[0].get_content()
    assert not locks.is_held_elsewhere(warehouse, locks.tenant_lock_name(tenant))


def _run_start(job_name):
    from dagster import DagsterEvent, DagsterEventType

    return DagsterEvent(event_type_value=DagsterEventType.RUN_START.value, job_name=job_name)


def test_the_tenant_lock_is_exclusive_within_a_process_and_freed_by_death(warehouse):
    name = locks.tenant_lock_name("acme")
    locks.acquire(warehouse, name)
    got = []
    waiter = threading.Thread(target=lambda: got.append(_try(warehouse, name, 0.3)))
    waiter.start()
    waiter.join()
    assert got == [False]  # a second sync in the same process waits like any other
    locks.release(warehouse, name)
    child = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from hg_pipeline.warehouse import db, locks; "
        f"locks.acquire(db.connect({str(warehouse.url.render_as_string(hide_password=False))!r}), {name!r}); "
        "print('held', flush=True); time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held"
    assert locks.is_held_elsewhere(warehouse, name)
    child.kill()
    child.wait()
    deadline = time.monotonic() + 10
    while locks.is_held_elsewhere(warehouse, name):  # PostgreSQL ends the dead session's locks
        assert time.monotonic() < deadline
        time.sleep(0.1)


def _try(engine, name, wait):
    try:
        locks.acquire(engine, name, wait_seconds=wait)
    except locks.LockBusy:
        return False
    locks.release(engine, name)
    return True


def test_a_run_whose_lock_session_died_loads_nothing(pg_url, warehouse, simulator, make_tenant, home):
    """An outage that killed only the lock's PostgreSQL session frees the lock while the run goes
    on: the run must not load beside a second sync it can no longer exclude."""
    tenant = make_tenant("acme", simulator, requests_per_second=None)
    run = hg(pg_url, home, "sync", tenant, "--full", env={"HG_PSA_REQUESTS_PER_SECOND": "3"})
    deadline = time.monotonic() + 60
    while not locks.is_held_elsewhere(warehouse, locks.tenant_lock_name(tenant)):
        assert time.monotonic() < deadline and run.poll() is None, run.communicate()
        time.sleep(0.05)
    with warehouse.connect() as conn:  # the sessions holding advisory locks are the lock sessions
        killed = conn.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())").all()
    assert killed
    out, err = run.communicate(timeout=300)
    assert run.returncode == 2
    [line] = err.splitlines()
    assert "tenant lock was lost" in line and line.startswith(f"hg-pipeline: tenant {tenant}: load ")
    assert all(count == 0 for count in rows_counts(warehouse, tenant))


def rows_counts(engine, tenant_id):
    with engine.connect() as conn:
        return [len(conn.execute(select(table.c.id).where(table.c.tenant_id == tenant_id)).all())
                for table in LOADED_TABLES.values()]
