"""Dagster's own commands work on the code location, as a data engineer runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterInstance

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
