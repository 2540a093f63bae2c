"""Dagster's own commands work on the code location, as a data engineer runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus
from sqlalchemy import select

from hg_pipeline.orchestration.home import prepare_home, write_dotenv
from hg_pipeline.warehouse.tables import sync_runs

from hg_pipeline.warehouse.load import live_counts

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture
def dagster_env(tmp_path, pg_url, simulator, make_tenant, monkeypatch):
    tenant = make_tenant("acme", simulator)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions("tenants", [tenant])
    env = dict(os.environ, DAGSTER_HOME=str(home), HG_DATABASE_URL=pg_url)
    return tenant, env


@pytest.mark.parametrize("command", [
    ["dagster", "asset", "materialize", "-m", "hg_pipeline.definitions", "--select", "members_raw*",
     "--partition", "acme"],
    ["dg", "launch", "--assets", "members_raw*", "--partition", "acme"],
])
def test_dagster_commands_materialize_a_tenant_partition(command, dagster_env, warehouse):
    tenant, env = dagster_env
    done = subprocess.run([str(BIN / command[0]), *command[1:]], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "RUN_SUCCESS" in done.stderr + done.stdout
    counts = live_counts(warehouse, tenant)
    assert counts["members"] == 12 and counts["companies"] == 0


@pytest.mark.parametrize("command", [
    ["dagster", "asset", "materialize", "-m", "hg_pipeline.definitions", "--select", "members_raw",
     "--partition", "acme"],
    ["dg", "launch", "--assets", "members_raw", "--partition", "acme"],
])
def test_dagster_commands_need_no_dagster_home_in_the_project_folder(command, tmp_path, pg_url, simulator,
                                                                     make_tenant, warehouse):
    """After setup (which writes .env), Dagster's commands use the CLI's home ./.hg/dagster, and
    their runs carry the tenant's tags, hold its lock and get a sync_runs row like any other."""
    tenant = make_tenant("acme", simulator)
    project = tmp_path / "project"
    project.mkdir()
    for name in ("dg.toml", "workspace.yaml", "dagster.yaml"):
        (project / name).write_text((ROOT / name).read_text())
    home = write_dotenv(project, os.environ)
    assert home == (project / ".hg" / "dagster").resolve()
    with DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions("tenants", [tenant])
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"} | {"HG_DATABASE_URL": pg_url}
    done = subprocess.run([str(BIN / command[0]), *command[1:]], cwd=project, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not list(project.glob(".tmp_dagster_home_*"))
    with DagsterInstance.from_config(str(home)) as instance:
        [run] = instance.get_runs()
    assert run.tags["hg/tenant"] == tenant and run.tags["hg/kind"] == "full"
    assert run.tags["hg/psa_host"] == f"127.0.0.1:{simulator.port}"
    with warehouse.connect() as conn:
        rows = conn.execute(select(sync_runs.c.kind, sync_runs.c.status, sync_runs.c.dagster_run_id)).all()
    assert [(r.kind, r.dagster_run_id) for r in rows] == [("full", run.run_id)]
    assert live_counts(warehouse, tenant)["members"] == 0  # an extract only stages


def test_queued_runs_get_their_tenant_tags_before_they_wait(tmp_path, pg_url, simulator, make_tenant):
    """A run launched from the UI, a backfill or `dagster job launch` carries only its partition:
    the coordinator adds hg/tenant, hg/kind and hg/psa_host before it queues the run, so the
    queue's one-run-per-PSA-host limit holds for it."""
    tenant = make_tenant("acme", simulator)
    home = prepare_home(tmp_path / "home", os.environ)
    with DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions("tenants", [tenant])
    env = dict(os.environ, DAGSTER_HOME=str(home), HG_DATABASE_URL=pg_url)
    for job in ("full_sync", "remap"):
        done = subprocess.run([str(BIN / "dagster"), "job", "launch", "-m", "hg_pipeline.definitions", "-j", job,
                               "--tags", json.dumps({"dagster/partition": tenant})], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    with DagsterInstance.from_config(str(home)) as instance:
        remap, full = instance.get_runs()
    assert full.status == remap.status == DagsterRunStatus.QUEUED
    assert {k: v for k, v in full.tags.items() if k.startswith("hg/")} == {
        "hg/tenant": tenant, "hg/kind": "full", "hg/psa_host": f"127.0.0.1:{simulator.port}"}
    assert {k: v for k, v in remap.tags.items() if k.startswith("hg/")} == {"hg/tenant": tenant, "hg/kind": "remap"}
