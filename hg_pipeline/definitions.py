"""The Dagster code location: composes the pieces, nothing else."""

from __future__ import annotations

from dagster import Definitions

from hg_pipeline.orchestration.assets import all_assets
from hg_pipeline.orchestration.jobs import JOBS_BY_KIND
from hg_pipeline.orchestration.resources import default_resources
from hg_pipeline.orchestration.sensors import mapping_change_sensor, tenant_partitions_sensor


def build_definitions(resources: dict | None = None) -> Definitions:
    return Definitions(
        assets=all_assets,
        jobs=list(JOBS_BY_KIND.values()),
        sensors=[tenant_partitions_sensor, mapping_change_sensor],
        resources=resources or default_resources(),
    )


defs = build_definitions()
