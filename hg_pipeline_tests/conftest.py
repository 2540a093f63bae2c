"""Shared fixtures: a real PostgreSQL database created for the test session.

The server is the one on 127.0.0.1:5432 (override with HG_TEST_PG_URL, an
admin URL without a database name). Each session creates its own database and drops it
at the end; each test that asks for `warehouse` gets it truncated (the global category
tree stays).
"""

from __future__ import annotations

import os
import uuid

import psycopg
import pytest
from sqlalchemy import text

from hg_pipeline.warehouse import db
from hg_pipeline.warehouse.schema import seed_global_categories, upgrade
from hg_pipeline.warehouse.tables import metadata

ADMIN_URL = os.environ.get("HG_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432")


@pytest.fixture(scope="session")
def pg_url():
    name = f"hg_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{ADMIN_URL}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{ADMIN_URL.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"
    upgrade(db.connect(url))
    yield url
    db.dispose_all()
    with psycopg.connect(f"{ADMIN_URL}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def warehouse(pg_url):
    """The test database's engine, emptied of tenants and everything that hangs off them."""
    engine = db.connect(pg_url)
    names = ", ".join(f"hg.{t.name}" for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} CASCADE"))
    seed_global_categories(engine)
    return engine


@pytest.fixture
def import_cli(pg_url, warehouse, monkeypatch, tmp_path, capsys):
    """`hg-pipeline ARGS... --database-url <test database>` in process, as (exit code, stdout,
    stderr), with the tenant `nopsa` (source: import) registered and a Dagster home of its own."""
    from hg_pipeline.cli import main

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    (tmp_path / "dagster").mkdir()

    def run(*args: str) -> tuple[int, str, str]:
        code = main([*args, "--database-url", pg_url])
        out, err = capsys.readouterr()
        return code, out, err

    assert run("tenant", "add", "nopsa", "--source", "import", "--name", "No PSA")[0] == 0
    return run
