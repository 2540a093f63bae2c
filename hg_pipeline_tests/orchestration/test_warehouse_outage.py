"""The warehouse dies mid-sync: the real command in its own process, a PostgreSQL database of the
test's own whose connections are cut (ALLOW_CONNECTIONS false, every backend terminated), a
simulator on loopback. The command ends with exit 2 and one line, the run ends FAILURE, and once
the database is back no `running` row is left and the rows converge."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
from dagster import DagsterInstance, DagsterRunStatus, build_sensor_context
from sqlalchemy import select, update

from hg_pipeline.orchestration import run as run_module
from hg_pipeline.orchestration.home import prepare_home
from hg_pipeline.orchestration.notify import abandoned_runs_sensor
from hg_pipeline.orchestration.resources import WarehouseResource
from hg_pipeline.orchestration.run import run_sync
from hg_pipeline.simulators.connectwise import DEMO_CREDENTIALS
from hg_pipeline.warehouse import db, locks
from hg_pipeline.warehouse.mappings import store_mapping
from hg_pipeline.warehouse.outage import WarehouseUnreachable
from hg_pipeline.warehouse.schema import upgrade
from hg_pipeline.warehouse.tables import sync_runs
from hg_pipeline.warehouse.tenants import Tenant, add_tenant
from hg_pipeline_tests.conftest import ADMIN_URL
from hg_pipeline_tests.orchestration.scenario import TEST_MAPPING
from hg_pipeline_tests.orchestration.test_run_guard import rows_of

BIN = Path(sys.executable).parent
SLOW = {"HG_PSA_REQUESTS_PER_SECOND": "6"}  # a sync long enough to be cut in its middle


@pytest.fixture
def outage_db():
    """A database of this test's own (the session's stays reachable for the other tests)."""
    name = f"hg_outage_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{ADMIN_URL}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{ADMIN_URL.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"
    upgrade(db.connect(url))
    yield name, url
    db.dispose(url)
    with psycopg.connect(f"{ADMIN_URL}/postgres", autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def cut(name: str) -> None:
    """No new connection, and every open one killed."""
    with psycopg.connect(f"{ADMIN_URL}/postgres", autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))


def restore(name: str) -> None:
    with psycopg.connect(f"{ADMIN_URL}/postgres", autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


@pytest.fixture
def tenants(outage_db, simulator, monkeypatch):
    _, url = outage_db
    engine = db.connect(url)
    refs = {}
    for key, value in DEMO_CREDENTIALS.items():
        monkeypatch.setenv(f"HG_OUTAGE_{key.upper()}", value)
        refs[key] = f"env:HG_OUTAGE_{key.upper()}"
    for tenant_id in ("acme", "reference"):
        add_tenant(engine, Tenant(tenant_id, tenant_id.title(), "connectwise", simulator.base_url, refs))
        store_mapping(engine, tenant_id, TEST_MAPPING)
    return engine


@pytest.fixture
def home(tmp_path):
    return prepare_home(tmp_path / "dagster", os.environ)


def hg(url, home, *args, env=None):
    return subprocess.Popen([str(BIN / "hg-pipeline"), *args, "--database-url", url],
                            env=dict(os.environ, DAGSTER_HOME=str(home), **(env or {})),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def states(engine, tenant_id):
    with engine.connect() as conn:
        return conn.execute(select(sync_runs.c.dagster_run_id, sync_runs.c.status, sync_runs.c.error)
                            .where(sync_runs.c.tenant_id == tenant_id).order_by(sync_runs.c.id)).all()


def start_and_cut_midway(name, url, engine, home):
    """A full sync of acme, cut once it has run a few seconds (extracting, throttled)."""
    victim = hg(url, home, "sync", "acme", "--full", env=SLOW)
    deadline = time.monotonic() + 120
    while not locks.is_held_elsewhere(engine, locks.tenant_lock_name("acme")):
        assert victim.poll() is None and time.monotonic() < deadline, victim.communicate()
        time.sleep(0.05)
    time.sleep(3)
    assert victim.poll() is None, "the sync ended before the outage"
    db.dispose(url)  # this test's own pooled connections die too
    cut(name)
    return victim


def assert_one_outage_line(err: str, url: str) -> str:
    assert "Traceback" not in err and "dagster._" not in err, err
    [line] = err.splitlines()
    assert line.startswith("hg-pipeline: tenant acme: "), line
    assert f"the warehouse at {db.safe_url(url)} is unreachable: " in line, line
    return line


def test_an_outage_past_the_commands_patience_exits_2_and_the_next_sync_fails_the_run(outage_db, tenants,
                                                                                     simulator, home):
    name, url = outage_db
    first = hg(url, home, "sync", "acme", "--full")
    assert first.wait(timeout=300) == 0, first.communicate()
    victim = start_and_cut_midway(name, url, tenants, home)
    try:
        out, err = victim.communicate(timeout=180)  # the warehouse stays away longer than the command waits
    finally:
        restore(name)
    assert victim.returncode == 2
    line = assert_one_outage_line(err, url)
    assert line.endswith("the sync's unfinished changes were rolled back"), line
    [good, (cut_run, status, _)] = states(tenants, "acme")
    assert (good.status, status) == ("success", "running")  # nothing could record it
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_run_by_id(cut_run).status == DagsterRunStatus.FAILURE

    again = hg(url, home, "sync", "acme", "--full")  # its sweep records how the cut run ended
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    rows = states(tenants, "acme")
    assert [s.status for s in rows] == ["success", "failure", "success"]
    assert rows[1].dagster_run_id == cut_run and "is unreachable" in rows[1].error
    reference = hg(url, home, "sync", "reference", "--full")
    assert reference.wait(timeout=300) == 0, reference.communicate()
    assert rows_of(tenants, "acme") == rows_of(tenants, "reference")


def test_a_short_outage_fails_the_sync_with_one_line_and_records_it(outage_db, tenants, simulator, home):
    name, url = outage_db
    victim = start_and_cut_midway(name, url, tenants, home)
    time.sleep(3)
    restore(name)  # back while the command still waits to record its run
    out, err = victim.communicate(timeout=180)
    assert victim.returncode == 2
    line = assert_one_outage_line(err, url)
    assert "failed: the warehouse at" in line and line.endswith("its changes were rolled back"), line
    [(run_id, status, error)] = states(tenants, "acme")
    assert status == "failure" and "is unreachable" in error and "\n" not in error
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_run_by_id(run_id).status == DagsterRunStatus.FAILURE
    again = hg(url, home, "sync", "acme", "--full")
    assert again.wait(timeout=300) == 0, again.communicate()
    reference = hg(url, home, "sync", "reference", "--full")
    assert reference.wait(timeout=300) == 0, reference.communicate()
    assert rows_of(tenants, "acme") == rows_of(tenants, "reference")
    assert "running" not in {s.status for s in states(tenants, "acme")}


def test_a_sync_that_succeeded_before_the_outage_is_recorded_a_success_by_the_sensor(outage_db, tenants, home,
                                                                                   monkeypatch):
    """The warehouse goes the moment the run has succeeded, before its row is written (the cut is
    made from the hook where the runner reads the run's events)."""
    name, url = outage_db
    monkeypatch.setattr(run_module, "FINISH_RETRY_SECONDS", 2.0)
    read_events = run_module.read_events

    def cut_then_read(events):
        db.dispose(url)
        cut(name)
        return read_events(events)

    monkeypatch.setattr(run_module, "read_events", cut_then_read)
    with DagsterInstance.from_config(str(home)) as instance:
        try:
            with pytest.raises(WarehouseUnreachable) as refused:
                run_sync(url, "acme", "full", instance=instance)
        finally:
            restore(name)
        [(run_id, status, _)] = states(tenants, "acme")
        assert status == "running" and instance.get_run_by_id(run_id).status == DagsterRunStatus.SUCCESS
        message = str(refused.value)
        assert message.startswith("tenant acme: the warehouse at ") and "\n" not in message
        assert message.endswith(f"the sync itself succeeded (dagster run {run_id}); its sync_runs row is "
                                "finished when the warehouse returns")

        with tenants.begin() as conn:  # past the sensor's grace for young rows
            conn.execute(update(sync_runs).values(started_at=datetime.now(timezone.utc) - timedelta(minutes=5)))
        with build_sensor_context(instance=instance, resources={"warehouse": WarehouseResource(database_url=url)},
                                  sensor_name=abandoned_runs_sensor.name) as context:
            abandoned_runs_sensor.evaluate_tick(context)
    with tenants.connect() as conn:
        row = conn.execute(select(sync_runs).where(sync_runs.c.dagster_run_id == run_id)).mappings().one()
    assert row["status"] == "success" and row["error"] is None and row["finished_at"] is not None
    assert json.loads(row["summary"])["companies"]["inserted"] > 0 and row["mapping_version"] == 1
