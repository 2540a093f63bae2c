"""Bulk writes shared by staging and loading.

Rows go into a temporary twin of the target table (COPY on PostgreSQL, executemany on
SQLite) and are then merged with a single INSERT ... SELECT ... ON CONFLICT statement,
so a load costs a handful of statements whatever the row count.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone

from sqlalchemy import Connection, Select, Table, text

from hg_pipeline.warehouse.db import SCHEMA


IN_LIST_SIZE = 5000  # ids per `IN (...)`: a statement's parameters stay well below the drivers' limits
STREAM_SIZE = 5000  # rows a streamed read holds at a time


def chunks(values: Sequence, size: int = IN_LIST_SIZE) -> Iterator[Sequence]:
    """`values` in consecutive slices of at most `size` (for `column.in_(...)` batches)."""
    for start in range(0, len(values), size):
        yield values[start:start + size]


def utc(moment: datetime | None) -> datetime | None:
    """A time read back from the warehouse, timezone-aware: SQLite gives naive datetimes back
    (they were stored in UTC)."""
    return moment.replace(tzinfo=timezone.utc) if moment is not None and moment.tzinfo is None else moment


def is_postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def qualified(conn: Connection, table: Table) -> str:
    return f"{SCHEMA}.{table.name}" if is_postgres(conn) else table.name


def distinct_from(conn: Connection) -> str:
    """The null-safe inequality operator of the dialect."""
    return "IS DISTINCT FROM" if is_postgres(conn) else "IS NOT"


def plain_rows(conn: Connection, statement: Select) -> list[tuple]:
    """The rows of a Core SELECT as plain tuples. On PostgreSQL straight from psycopg's cursor:
    SQLAlchemy's Row objects cost about 4 µs a row, most of a second for the 100,000s a map
    stage reads; elsewhere through SQLAlchemy, whose column types also parse SQLite's timestamps."""
    if not is_postgres(conn):
        return [tuple(row) for row in conn.execute(statement)]
    cursor = conn.connection.driver_connection.cursor()
    cursor.execute(*_compiled(conn, statement))
    return cursor.fetchall()


def streamed_rows(conn: Connection, statement: Select, size: int = STREAM_SIZE) -> Iterator[list[tuple]]:
    """`plain_rows` in batches of at most `size`, so that memory holds one batch and not the
    result: on PostgreSQL through a server-side cursor (psycopg's plain cursor would receive the
    whole result first), elsewhere from SQLAlchemy's result as SQLite produces it."""
    if not is_postgres(conn):
        result = conn.execution_options(stream_results=True).execute(statement)
        for batch in result.partitions(size):
            yield [tuple(row) for row in batch]
        return
    with conn.connection.driver_connection.cursor(name="hg_streamed_rows") as cursor:
        cursor.itersize = size
        cursor.execute(*_compiled(conn, statement))
        while batch := cursor.fetchmany(size):
            yield batch


def _compiled(conn: Connection, statement: Select) -> tuple[str, dict]:
    compiled = statement.compile(dialect=conn.dialect, schema_translate_map={None: SCHEMA},
                                 render_schema_translate=True, compile_kwargs={"render_postcompile": True})
    return str(compiled), compiled.params


def create_temp_twin(conn: Connection, table: Table, temp_name: str) -> None:
    """A temporary table with the columns (and types) of `table`, dropped at commit."""
    if is_postgres(conn):
        conn.execute(text(
            f"CREATE TEMP TABLE {temp_name} (LIKE {qualified(conn, table)} INCLUDING DEFAULTS) ON COMMIT DROP"
        ))
    else:
        conn.execute(text(f"DROP TABLE IF EXISTS temp.{temp_name}"))
        conn.execute(text(f"CREATE TEMP TABLE {temp_name} AS SELECT * FROM {table.name} WHERE 0"))


def copy_rows(conn: Connection, target: str, columns: Sequence[str], rows: Iterable[Sequence]) -> int:
    """Append rows (tuples in `columns` order) to `target` (a name from `qualified` or
    `temp_ref`) in the connection's transaction; returns the count."""
    count = 0
    if is_postgres(conn):
        cursor = conn.connection.driver_connection.cursor()
        with cursor.copy(f"COPY {target} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
        return count
    rows = (tuple(_sqlite_value(value) for value in row) for row in rows)
    placeholders = ", ".join("?" for _ in columns)
    batch: list[Sequence] = []
    cursor = conn.connection.driver_connection.cursor()
    sql = f"INSERT INTO {target} ({', '.join(columns)}) VALUES ({placeholders})"
    for row in rows:
        batch.append(row)
        if len(batch) >= 5000:
            cursor.executemany(sql, batch)
            count += len(batch)
            batch.clear()
    if batch:
        cursor.executemany(sql, batch)
        count += len(batch)
    return count


def copy_text(conn: Connection, target: str, columns: Sequence[str]):
    """`COPY target (columns) FROM STDIN` on PostgreSQL: psycopg's Copy, a context manager to
    `write()` rows already in COPY's text form to (`copy_field` text, a tab between fields, a
    newline after each row). What staging writes: rows of JSON by the hundred thousand, where
    `write_row` cost several µs a row and a page joined into one text about one (a first full
    sync took about 3 s less). `copy_rows` keeps `write_row` for other rows: formatting their
    values in Python was slower than psycopg's C."""
    cursor = conn.connection.driver_connection.cursor()
    return cursor.copy(f"COPY {target} ({', '.join(columns)}) FROM STDIN")


def copy_field(value: str) -> str:
    """Text as a field of COPY's text form: backslash, tab, line feed and carriage return escaped."""
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def index_temp(conn: Connection, temp_name: str, columns: Sequence[str]) -> None:
    """Index a filled temp table and give the planner its size: without statistics,
    PostgreSQL joins it as if it held one row (a nested loop over every row)."""
    cols = ", ".join(columns)
    if is_postgres(conn):
        conn.execute(text(f"CREATE INDEX ON {temp_name} ({cols})"))
        conn.execute(text(f"ANALYZE {temp_name}"))
    else:
        conn.execute(text(f"CREATE INDEX temp.{temp_name}_key ON {temp_name} ({cols})"))


def _sqlite_value(value):
    # The format SQLAlchemy's SQLite DateTime type writes and reads back (UTC, naive).
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def temp_ref(conn: Connection, temp_name: str) -> str:
    return temp_name if is_postgres(conn) else f"temp.{temp_name}"
