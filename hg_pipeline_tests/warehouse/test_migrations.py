"""Migrations replay: an empty warehouse upgraded to head has exactly the schema of tables.py,
rows written under an older revision survive the upgrade, and downgrades work, on
PostgreSQL and SQLite."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData, Table, UniqueConstraint, inspect, select
from sqlalchemy.exc import IntegrityError

from hg_pipeline.warehouse import db
from hg_pipeline.warehouse.db import SCHEMA
from hg_pipeline.warehouse.schema import MIGRATIONS, downgrade, upgrade
from hg_pipeline.warehouse.tables import metadata
from hg_pipeline_tests.conftest import ADMIN_URL

NEW_IN_0002 = {("sync_runs", "mapping_version"), ("mapping_versions", "comment")}
AT = datetime(2026, 3, 1, 12, 30, tzinfo=timezone.utc)


@pytest.fixture(params=["postgresql", "sqlite"])
def empty(request, tmp_path):
    """A database with nothing in it: a fresh PostgreSQL database, or a new SQLite file."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'w.db'}"
        yield db.connect(url)
        db.dispose(url)
        return
    name = f"hg_mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{ADMIN_URL}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{ADMIN_URL.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"
    yield db.connect(url)
    db.dispose(url)
    with psycopg.connect(f"{ADMIN_URL}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def schema_of(engine: Engine) -> str | None:
    return SCHEMA if db.is_postgres(engine) else None


def differences(engine: Engine) -> list:
    """What Alembic's autogenerate would change to make the database match tables.py."""
    schema = schema_of(engine)
    target = metadata
    if schema:
        target = MetaData()
        for table in metadata.sorted_tables:
            table.to_metadata(target, schema=schema)

    def include_name(name, type_, _parent):
        if type_ == "schema":
            return name == schema
        return name != "alembic_version"

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "include_schemas": bool(schema),
            "include_name": include_name,
            "compare_type": True,
            "compare_server_default": True,
        })
        return compare_metadata(context, target)


def _where(clause) -> str | None:
    """A partial index's condition, without the parentheses PostgreSQL adds."""
    if clause is None:
        return None
    return " ".join(str(clause).replace("(", " ").replace(")", " ").split()).lower()


def reflected_indexes(engine: Engine) -> dict[tuple[str, str], tuple[bool, str | None]]:
    """(table, index) -> (unique, partial condition); autogenerate ignores the condition."""
    schema = schema_of(engine)
    key = "postgresql_where" if schema else "sqlite_where"
    inspector = inspect(engine)
    return {
        (table, index["name"]): (bool(index["unique"]), _where(index["dialect_options"].get(key)))
        for table in inspector.get_table_names(schema=schema)
        for index in inspector.get_indexes(table, schema=schema)
        if "duplicates_constraint" not in index
    }


def declared_indexes(dialect: str) -> dict[tuple[str, str], tuple[bool, str | None]]:
    return {
        (table.name, index.name): (index.unique, _where(index.dialect_options[dialect]["where"]))
        for table in metadata.sorted_tables
        for index in table.indexes
    }


def reflected_uniques(engine: Engine) -> set[tuple[str, tuple[str, ...]]]:
    """(table, columns) of every unique constraint; autogenerate misses unnamed ones on SQLite."""
    schema = schema_of(engine)
    inspector = inspect(engine)
    return {
        (table, tuple(unique["column_names"]))
        for table in inspector.get_table_names(schema=schema)
        for unique in inspector.get_unique_constraints(table, schema=schema)
    }


def declared_uniques() -> set[tuple[str, tuple[str, ...]]]:
    return {
        (table.name, tuple(column.name for column in constraint.columns))
        for table in metadata.sorted_tables
        for constraint in table.constraints
        if isinstance(constraint, UniqueConstraint)
    }


def revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table_schema": schema_of(engine)}).get_current_revision()


def head() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


def tables(engine: Engine) -> dict[str, Table]:
    """The tables as the database has them now (not as tables.py declares them), by name."""
    reflected = MetaData()
    reflected.reflect(engine, schema=schema_of(engine))
    return {t.name: t for t in reflected.tables.values()}


def columns(engine: Engine, name: str) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns(name, schema=schema_of(engine))}


def assert_matches_tables_py(engine: Engine) -> None:
    assert differences(engine) == []
    dialect = "postgresql" if db.is_postgres(engine) else "sqlite"
    assert reflected_indexes(engine) == declared_indexes(dialect)
    assert reflected_uniques(engine) == declared_uniques()


ROWS = {
    "tenants": [{"tenant_id": "acme", "name": "Acme IT", "source": "connectwise",
                 "base_url": "https://na.example", "credentials": '{"client_id": "env:CW_CLIENT"}',
                 "notify_email": "ops@acme.example", "created_at": AT}],
    "mapping_versions": [{"tenant_id": "acme", "version": 1, "document": "companies:\n  types: {}\n",
                          "created_at": AT}],
    "categories": [{"id": "cat-1", "tenant_id": "acme", "name": "Custom", "parent_id": None,
                    "path": "Software/Custom", "custom": True}],
    "companies": [
        {"id": "co-1", "tenant_id": "acme", "psa_id": "19", "name": "Contoso", "psa_name": "Contoso Ltd",
         "hg_type": "client", "psa_type": "Customer", "origin": "psa", "content_hash": "h1",
         "created_at": AT, "updated_at": AT, "deleted_at": None},
        # The soft-deleted twin of a record that moved to a HighGround company.
        {"id": "co-2", "tenant_id": "acme", "psa_id": "19", "name": "Contoso (old)", "psa_name": "Contoso Ltd",
         "hg_type": None, "psa_type": "Customer", "origin": "psa", "content_hash": "h2",
         "created_at": AT, "updated_at": AT, "deleted_at": AT},
    ],
    "contacts": [{"id": "ct-1", "tenant_id": "acme", "psa_id": "7", "company_id": "co-1", "first_name": "Ada",
                  "last_name": "Byron", "email": "ada@contoso.example", "contact_type": "Owner",
                  "invite_status": "not_invited", "origin": "psa", "content_hash": "h3",
                  "created_at": AT, "updated_at": AT, "deleted_at": None}],
    "spend": [{"tenant_id": "acme", "company_id": "co-1", "category_id": "cat-1", "product_id": None,
               "month": "2026-02", "amount": Decimal("1234.50"), "currency": "USD"}],
    "sync_runs": [{"tenant_id": "acme", "kind": "full", "status": "success", "started_at": AT,
                   "finished_at": AT, "dagster_run_id": "run-1", "summary": '{"companies": 2}', "error": None}],
}


def comparable(row) -> dict:
    """A row without surrogate ids, datetimes as naive UTC (SQLite keeps no zone)."""
    out = {}
    for key, value in row.items():
        if isinstance(value, datetime) and value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        out[key] = value
    if isinstance(out.get("id"), int):
        del out["id"]
    return out


def test_an_empty_database_upgraded_to_head_has_the_schema_of_tables_py(empty):
    upgrade(empty)

    assert revision(empty) == head()
    assert_matches_tables_py(empty)
    # The partial unique index is at work: a second live row for one PSA record is refused.
    reflected = tables(empty)
    with empty.begin() as conn:
        conn.execute(reflected["tenants"].insert(), ROWS["tenants"])
        conn.execute(reflected["companies"].insert(), ROWS["companies"])
    live_twin = dict(ROWS["companies"][1], id="co-3", deleted_at=None)
    with pytest.raises(IntegrityError), empty.begin() as conn:
        conn.execute(reflected["companies"].insert(), [live_twin])


def test_rows_written_at_0001_survive_the_upgrade_to_head(empty):
    upgrade(empty, "0001")
    assert revision(empty) == "0001"
    before = {name: columns(empty, name) for name in ROWS}
    assert not {(name, column) for name in ROWS for column in before[name]} & NEW_IN_0002

    old = tables(empty)  # written through the 0001 schema, not through today's tables.py
    with empty.begin() as conn:
        for name, rows in ROWS.items():
            conn.execute(old[name].insert(), rows)

    upgrade(empty)

    assert revision(empty) == head()
    assert_matches_tables_py(empty)
    new = tables(empty)
    with empty.connect() as conn:
        for name, rows in ROWS.items():
            added = columns(empty, name) - before[name]
            assert {column for table_name, column in NEW_IN_0002 if table_name == name} <= added
            t = new[name]
            query = select(t).where(t.c.tenant_id == "acme").order_by(*t.primary_key.columns)
            stored = [comparable(row) for row in conn.execute(query).mappings()]
            for row in stored:  # columns added after 0001 are empty on old rows
                assert {column: row.pop(column) for column in added} == dict.fromkeys(added), name
            assert stored == [comparable(row) for row in rows], name

    with empty.begin() as conn:
        conn.execute(new["sync_runs"].update().values(mapping_version=1))
        conn.execute(new["mapping_versions"].insert(), [{
            "tenant_id": "acme", "version": 2, "document": "companies: {}\n", "created_at": AT,
            "comment": "rollback to version 1"}])
    with empty.connect() as conn:
        assert conn.execute(select(new["sync_runs"].c.mapping_version)).scalar_one() == 1
        comments = select(new["mapping_versions"].c.comment).order_by(new["mapping_versions"].c.version)
        assert conn.execute(comments).scalars().all() == [None, "rollback to version 1"]


def test_downgrade_to_base_and_replay_to_head(empty):
    upgrade(empty)
    reflected = tables(empty)
    with empty.begin() as conn:
        conn.execute(reflected["tenants"].insert(), ROWS["tenants"])
        conn.execute(reflected["mapping_versions"].insert(), [dict(ROWS["mapping_versions"][0], comment="first")])
        conn.execute(reflected["sync_runs"].insert(), [dict(ROWS["sync_runs"][0], mapping_version=1)])

    downgrade(empty, "0001")

    assert revision(empty) == "0001"
    assert "mapping_version" not in columns(empty, "sync_runs")
    assert "comment" not in columns(empty, "mapping_versions")
    # SQLite rebuilt both tables (batch mode): rows and the unique constraint are kept.
    assert ("sync_runs", ("dagster_run_id",)) in reflected_uniques(empty)
    reflected = tables(empty)
    with empty.connect() as conn:
        assert conn.execute(select(reflected["sync_runs"].c.dagster_run_id)).scalars().all() == ["run-1"]
        assert conn.execute(select(reflected["mapping_versions"].c.version)).scalars().all() == [1]

    downgrade(empty, "base")

    assert revision(empty) is None
    assert set(inspect(empty).get_table_names(schema=schema_of(empty))) == {"alembic_version"}

    upgrade(empty)

    assert revision(empty) == head()
    assert_matches_tables_py(empty)
