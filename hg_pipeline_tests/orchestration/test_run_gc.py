"""A run collects cyclic garbage less often (`runtime.collect_less`, issue 10) and gives the
process its own setting back when it ends, whether it succeeded or not."""

from __future__ import annotations

import gc

from dagster import DagsterInstance, Failure, job, op

from hg_pipeline.orchestration.resources import WarehouseResource
from hg_pipeline.runtime import GC_THRESHOLDS


def test_a_run_collects_cyclic_garbage_less_often_and_restores_the_setting(pg_url, warehouse):
    seen = []

    @op
    def probe(warehouse: WarehouseResource) -> None:
        seen.append(gc.get_threshold())

    @op
    def probe_and_fail(warehouse: WarehouseResource) -> None:
        seen.append(gc.get_threshold())
        raise Failure(description="the step failed")

    @job
    def fine():
        probe()

    @job
    def failing():
        probe_and_fail()

    before = (700, 10, 10)
    gc.set_threshold(*before)
    try:
        resources = {"warehouse": WarehouseResource(database_url=pg_url)}
        with DagsterInstance.ephemeral() as instance:
            assert fine.execute_in_process(resources=resources, instance=instance).success
            assert not failing.execute_in_process(resources=resources, instance=instance,
                                                  raise_on_error=False).success
        assert seen == [GC_THRESHOLDS, GC_THRESHOLDS]
        assert gc.get_threshold() == before
    finally:
        gc.set_threshold(*before)
