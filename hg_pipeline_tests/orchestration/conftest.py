"""Fixtures for end-to-end syncs: simulators on loopback, tenants, a Dagster test instance."""

from __future__ import annotations

import itertools

import pytest
from dagster import instance_for_test

from hg_pipeline.connectors import registry
from hg_pipeline.simulators.connectwise import ConnectWiseSimulator
from hg_pipeline.simulators.datasets import generate
from hg_pipeline.warehouse.mappings import store_mapping
from hg_pipeline.warehouse.tenants import Tenant, add_tenant
from hg_pipeline_tests.orchestration.scenario import TEST_MAPPING

_counter = itertools.count()
# The simulators answer as fast as they are asked (unless a test sets their rate limit), so the
# tests' tenants declare a rate far above the vendors' defaults (registry.py): HaloPSA's 0.9/s
# would make every sync a minute long.
TEST_RATE = 500.0


@pytest.fixture
def instance():
    with instance_for_test() as instance:
        yield instance


@pytest.fixture
def simulator():
    with ConnectWiseSimulator(generate("small", seed=1)) as sim:
        yield sim


@pytest.fixture
def make_tenant(warehouse, monkeypatch):
    """Registers a tenant of `source` on a simulator, its secrets (default: the simulator's demo
    ones) in env vars, with TEST_MAPPING."""

    def make(tenant_id: str, sim: ConnectWiseSimulator, *, mapping: str | None = TEST_MAPPING,
             secrets: dict[str, str] | None = None, source: str = "connectwise",
             requests_per_second: float | None = TEST_RATE) -> str:
        prefix = f"HG_TEST_{next(_counter)}"
        refs = {}
        demo = registry.source(source).simulator_module().DEMO_CREDENTIALS
        for key, value in (secrets or demo).items():
            monkeypatch.setenv(f"{prefix}_{key.upper()}", value)
            refs[key] = f"env:{prefix}_{key.upper()}"
        add_tenant(warehouse, Tenant(tenant_id, tenant_id.title(), source, sim.base_url, refs,
                                     f"ops@{tenant_id}.example", requests_per_second=requests_per_second))
        if mapping:
            store_mapping(warehouse, tenant_id, mapping)
        return tenant_id

    return make
