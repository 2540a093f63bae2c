"""Dagster's own storage, chosen from the environment when the instance loads.

`dagster.yaml` names `EnvSelectedStorage`, so one file serves every machine:

- `DAGSTER_PG_URL` set (or `DAGSTER_PG_HOST` with `DAGSTER_PG_USERNAME`, `DAGSTER_PG_PASSWORD`,
  `DAGSTER_PG_DB`, `DAGSTER_PG_PORT`): dagster-postgres storage (runs, event log, schedules);
- otherwise SQLite under `base_dir` (default `$DAGSTER_HOME`, where Dagster keeps it by default).

dagster-postgres speaks psycopg2, so the URL's driver is set to `postgresql+psycopg2`
whatever it was (a bare `postgresql://` means psycopg 3 in SQLAlchemy 2.1). The yaml holds
no secret: the URL is read from the environment by every process that loads the instance.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from dagster import Field, StringSource
from dagster._core.storage.base_storage import DagsterStorage
from dagster._serdes import ConfigurableClass, ConfigurableClassData

PG_URL_VAR = "DAGSTER_PG_URL"
PG_DRIVER = "postgresql+psycopg2"


def postgres_url_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """The Dagster storage URL from DAGSTER_PG_URL or its parts; None when neither is set."""
    env = os.environ if environ is None else environ
    url = (env.get(PG_URL_VAR) or "").strip()
    if url:
        scheme, sep, rest = url.partition("://")
        if not sep or scheme.split("+")[0] not in ("postgresql", "postgres"):
            raise ValueError(f"{PG_URL_VAR} must be a postgresql:// URL")
        return f"{PG_DRIVER}://{rest}"
    host = (env.get("DAGSTER_PG_HOST") or "").strip()
    if not host:
        return None
    from dagster_postgres.utils import get_conn_string

    return get_conn_string(
        username=env.get("DAGSTER_PG_USERNAME") or "postgres",
        password=env.get("DAGSTER_PG_PASSWORD") or "",
        hostname=host,
        db_name=env.get("DAGSTER_PG_DB") or "dagster",
        port=env.get("DAGSTER_PG_PORT") or "5432",
        scheme=PG_DRIVER,
    )


class EnvSelectedStorage(DagsterStorage, ConfigurableClass):
    """Never instantiated: `from_config_value` returns the Postgres or the SQLite storage."""

    @classmethod
    def config_type(cls):
        return {"base_dir": Field(StringSource, is_required=False,
                                  description="SQLite folder when no Postgres is configured (default $DAGSTER_HOME)")}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Mapping) -> DagsterStorage:
        url = postgres_url_from_env()
        if url:
            from dagster_postgres import DagsterPostgresStorage

            return DagsterPostgresStorage(postgres_url=url, inst_data=inst_data)
        from dagster._core.storage.sqlite_storage import DagsterSqliteStorage

        base_dir = config_value.get("base_dir") or os.environ.get("DAGSTER_HOME")
        if not base_dir:
            raise ValueError("DAGSTER_HOME is not set and no base_dir is configured for the SQLite storage")
        return DagsterSqliteStorage.from_local(base_dir=os.path.abspath(base_dir), inst_data=inst_data)
