"""The spend tests reuse the end-to-end fixtures: simulators on loopback, tenants, a Dagster instance."""

from hg_pipeline_tests.orchestration.conftest import instance, make_tenant, simulator  # noqa: F401
