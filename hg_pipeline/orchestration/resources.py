"""Dagster resources: the warehouse connection and the PSA connector factory."""

from __future__ import annotations

import gc
import os

from dagster import ConfigurableResource, EnvVar, InitResourceContext
from pydantic import PrivateAttr
from sqlalchemy import Engine

from hg_pipeline.connectors import build_connector
from hg_pipeline.connectors.credentials import resolve_credentials
from hg_pipeline.connectors.http import (
    DEFAULT_DEADLINE,
    DEFAULT_ENTITY_DEADLINE,
    DEFAULT_TIMEOUT,
    UNANSWERED_ATTEMPTS,
    Reachability,
)
from hg_pipeline.runtime import collect_less
from hg_pipeline.warehouse import db
from hg_pipeline.connectors.registry import source
from hg_pipeline.warehouse.tenants import Tenant


class WarehouseResource(ConfigurableResource):
    """The warehouse: a SQLAlchemy URL (PostgreSQL with psycopg 3, or SQLite).

    Inside a run it also guards the tenant (orchestration/run_guard.py): the run holds the
    tenant's sync lock, waiting at most `lock_wait_seconds` for another sync of the tenant
    to end, and carries its tags and sync_runs row; and the run collects cyclic garbage less
    often (`runtime.collect_less`). Sensors and schedules use it unguarded.
    """

    database_url: str
    lock_wait_seconds: float = 30.0
    _hold: object = PrivateAttr(default=None)
    _gc_thresholds: tuple | None = PrivateAttr(default=None)

    def engine(self) -> Engine:
        return db.connect(self.database_url)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        if context.dagster_run is None or context.instance is None:
            return
        from hg_pipeline.orchestration.jobs import KIND_TAG
        from hg_pipeline.orchestration.run_guard import enter_run

        self._gc_thresholds = collect_less()
        try:
            from hg_pipeline.quality import worker

            worker.prepare(context.dagster_run.tags.get(KIND_TAG, ""))  # great-expectations, where it will run
            self._hold = enter_run(context.instance, self.engine(), context.dagster_run,
                                   wait_seconds=self.lock_wait_seconds)
        except BaseException:
            self._restore_gc()
            raise

    def lost_tenant_lock(self) -> str | None:
        """Why this run no longer holds its tenant's lock, or None while it does (or is unguarded)."""
        from hg_pipeline.orchestration.run_guard import lock_lost

        return lock_lost(self.engine(), self._hold)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        from hg_pipeline.orchestration.run_guard import leave_run

        try:
            leave_run(self.engine(), self._hold)
        finally:
            self._hold = None
            self._restore_gc()

    def _restore_gc(self) -> None:
        if self._gc_thresholds is not None:
            gc.set_threshold(*self._gc_thresholds)
            self._gc_thresholds = None


class PsaResource(ConfigurableResource):
    """Builds a tenant's PSA connector; secrets are read from the tenant's env: references.

    Inside a run its connectors share what they learn about the PSA (`Reachability`): once one
    entity gave up on a PSA that does not answer, the run's other entities fail at once.
    Worst case of a PSA that never answers, defaults: `worst_case_unanswered_seconds()`.
    """

    page_size: int = 1000
    concurrency: int = 4
    requests_per_second: float | None = None
    max_retries: int = 5
    # connect, and the longest silence while an answer comes
    timeout_seconds: float = DEFAULT_TIMEOUT
    # the most one PSA request attempt may take, connect to last body byte (a slow drip included)
    request_deadline_seconds: float = DEFAULT_DEADLINE
    # no retry starts after one entity has read for this long
    entity_deadline_seconds: float = DEFAULT_ENTITY_DEADLINE
    _reachability: Reachability | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._reachability = Reachability()  # one per run: a new run asks the PSA again

    def worst_case_unanswered_seconds(self, backoff: float = 0.5) -> float:
        """The longest a sync waits on a PSA that never completes an answer (silent, or
        dripping so slowly that every attempt meets the deadline): one request's attempts
        without an answer, each to its deadline, and the backoffs between them; the other
        entities then fail at once. (A PSA that answers, even with errors, is not bounded by this.)"""
        attempts = min(UNANSWERED_ATTEMPTS, self.max_retries + 1)
        per_attempt = max(self.request_deadline_seconds, 0.0)
        return attempts * per_attempt + sum(min(backoff * 2 ** i, 60.0) for i in range(attempts - 1))

    def connector_for(self, tenant: Tenant):
        spec = source(tenant.source)
        credentials = resolve_credentials(tenant.credentials, spec.required_keys)
        # The tenant's own setting, else the operator's, else what the vendor allows.
        rate = tenant.requests_per_second or self.requests_per_second or spec.default_requests_per_second
        http_options: dict[str, object] = {"entity_deadline": self.entity_deadline_seconds}
        if self._reachability is not None:
            http_options["reachability"] = self._reachability
        return build_connector(
            tenant.source,
            tenant.base_url,
            credentials,
            page_size=self.page_size,
            concurrency=self.concurrency,
            requests_per_second=rate,
            max_retries=self.max_retries,
            timeout=self.timeout_seconds,
            deadline=self.request_deadline_seconds,
            http_options=http_options,
        )


# PSA client settings that operators may tune per deployment (not secrets).
PSA_SETTINGS = {
    "max_retries": ("HG_PSA_MAX_RETRIES", int),
    "concurrency": ("HG_PSA_CONCURRENCY", int),
    "requests_per_second": ("HG_PSA_REQUESTS_PER_SECOND", float),
    "request_deadline_seconds": ("HG_PSA_REQUEST_DEADLINE", float),
    "timeout_seconds": ("HG_PSA_TIMEOUT", float),
    "entity_deadline_seconds": ("HG_PSA_ENTITY_DEADLINE", float),
}


def psa_resource() -> PsaResource:
    """PsaResource with the HG_PSA_* variables that are set."""
    return PsaResource(**{field: kind(os.environ[var]) for field, (var, kind) in PSA_SETTINGS.items()
                          if os.environ.get(var)})


LOCK_WAIT_VAR = "HG_TENANT_LOCK_WAIT_SECONDS"


def warehouse_resource(database_url: str | EnvVar) -> WarehouseResource:
    """WarehouseResource with HG_TENANT_LOCK_WAIT_SECONDS when it is set."""
    wait = os.environ.get(LOCK_WAIT_VAR, "").strip()
    return WarehouseResource(database_url=database_url, **({"lock_wait_seconds": float(wait)} if wait else {}))


def default_resources() -> dict[str, ConfigurableResource]:
    """Production reads HG_DATABASE_URL; without it the embedded SQLite file is used."""
    if os.environ.get("HG_DATABASE_URL"):
        warehouse = warehouse_resource(EnvVar("HG_DATABASE_URL"))
    else:
        warehouse = warehouse_resource(db.default_database_url())
    return {"warehouse": warehouse, "psa": psa_resource()}
