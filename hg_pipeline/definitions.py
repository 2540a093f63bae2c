"""The Dagster code location: composes the pieces, nothing else."""

from __future__ import annotations

from dagster import Definitions, in_process_executor

from hg_pipeline import secrets
from hg_pipeline.orchestration.assets import all_assets
from hg_pipeline.orchestration.jobs import JOBS_BY_KIND
from hg_pipeline.orchestration.notify import notification_sensors
from hg_pipeline.orchestration.resources import default_resources
from hg_pipeline.orchestration.schedules import nightly_resync_schedule, weekly_reconcile_schedule
from hg_pipeline.orchestration.sensors import import_batch_sensor, mapping_change_sensor, tenant_partitions_sensor


def build_definitions(resources: dict | None = None) -> Definitions:
    return Definitions(
        assets=all_assets,
        jobs=list(JOBS_BY_KIND.values()),
        sensors=[tenant_partitions_sensor, mapping_change_sensor, import_batch_sensor, *notification_sensors],
        schedules=[nightly_resync_schedule, weekly_reconcile_schedule],
        resources=resources or default_resources(),
        # One process per run, as the CLI runs: a process per step re-imports everything
        # (about 10x slower for a small tenant), and the run-wide tenant lock lives in it.
        executor=in_process_executor,
    )


secrets.install_log_scrubbing()  # no credential in any log record of a process that loads this location
defs = build_definitions()
