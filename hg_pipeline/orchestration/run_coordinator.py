"""The run queue, with every tenant run tagged before it waits in it.

Runs launched from the UI, `dagster job backfill` or a sensor that did not tag them still
need `hg/tenant`, `hg/kind` and `hg/psa_host` before the queue applies its limits (one run
per PSA host, one per tenant: dagster.yaml). This is Dagster's public `QueuedRunCoordinator`
adding those tags on submission; everything else is unchanged. It reads the tenant's PSA
host from the warehouse (HG_DATABASE_URL, else the embedded file); when the warehouse cannot
be read it queues the run with the tags it could derive and says so in the log.
"""

from __future__ import annotations

import logging

from dagster import DagsterRun, QueuedRunCoordinator, SubmitRunContext

from hg_pipeline.orchestration.run_guard import missing_tags
from hg_pipeline.warehouse import db

log = logging.getLogger("hg_pipeline.run_coordinator")


class TenantTaggingRunCoordinator(QueuedRunCoordinator):
    def submit_run(self, context: SubmitRunContext) -> DagsterRun:
        run = context.dagster_run
        try:
            tags = missing_tags(db.connect(), run)
        except Exception as exc:  # noqa: BLE001 - a run is never refused for want of a tag
            log.warning(f"run {run.run_id}: could not read its tenant's PSA host: "
                                 f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
            tags = {}
        if tags:  # `_instance` is how Dagster's documented coordinator extensions reach the instance
            self._instance.add_run_tags(run.run_id, tags)
            run = self._instance.get_run_by_id(run.run_id) or run
        return super().submit_run(SubmitRunContext(run, context.workspace))
