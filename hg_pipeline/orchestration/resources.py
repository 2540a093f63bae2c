"""Dagster resources: the warehouse connection and the PSA connector factory."""

from __future__ import annotations

import os

from dagster import ConfigurableResource, EnvVar
from sqlalchemy import Engine

from hg_pipeline.connectors import build_connector
from hg_pipeline.connectors.credentials import resolve_credentials
from hg_pipeline.warehouse import db
from hg_pipeline.warehouse.tenants import CREDENTIAL_KEYS, Tenant


class WarehouseResource(ConfigurableResource):
    """The warehouse: a SQLAlchemy URL (PostgreSQL with psycopg 3, or SQLite)."""

    database_url: str

    def engine(self) -> Engine:
        return db.connect(self.database_url)


class PsaResource(ConfigurableResource):
    """Builds a tenant's PSA connector; secrets are read from the tenant's env: references."""

    page_size: int = 1000
    concurrency: int = 4
    requests_per_second: float | None = None
    max_retries: int = 5
    timeout_seconds: float = 30

    def connector_for(self, tenant: Tenant):
        credentials = resolve_credentials(tenant.credentials, CREDENTIAL_KEYS[tenant.source])
        return build_connector(
            tenant.source,
            tenant.base_url,
            credentials,
            page_size=self.page_size,
            concurrency=self.concurrency,
            requests_per_second=self.requests_per_second,
            max_retries=self.max_retries,
            timeout=self.timeout_seconds,
        )


# PSA client settings that operators may tune per deployment (not secrets).
PSA_SETTINGS = {
    "max_retries": ("HG_PSA_MAX_RETRIES", int),
    "concurrency": ("HG_PSA_CONCURRENCY", int),
    "requests_per_second": ("HG_PSA_REQUESTS_PER_SECOND", float),
}


def psa_resource() -> PsaResource:
    """PsaResource with the HG_PSA_* variables that are set."""
    return PsaResource(**{field: kind(os.environ[var]) for field, (var, kind) in PSA_SETTINGS.items()
                          if os.environ.get(var)})


def default_resources() -> dict[str, ConfigurableResource]:
    """Production reads HG_DATABASE_URL; without it the embedded SQLite file is used."""
    if os.environ.get("HG_DATABASE_URL"):
        warehouse = WarehouseResource(database_url=EnvVar("HG_DATABASE_URL"))
    else:
        warehouse = WarehouseResource(database_url=db.default_database_url())
    return {"warehouse": warehouse, "psa": psa_resource()}
