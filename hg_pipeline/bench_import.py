"""`hg-pipeline bench --source import`: a 1,000,000-line spend CSV imported into PostgreSQL.

Prints, each in a process of its own (time from spawn to exit, the child's own peak RSS, `bench.timed_process`):
- the floor: PostgreSQL's COPY of the same file into a plain table (psycopg, no checks);
- `hg-pipeline import` of the file: every line checked, then staged through the extract stage;
- the same import again (nothing changes: the merge writes nothing).
Goal: the import's peak RSS below 500 MB, whatever the file's size.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from hg_pipeline.bench import cli_command, plain_url, timed_process
from hg_pipeline.warehouse import db

IMPORT_ROWS = 1_000_000
IMPORT_RSS_GOAL_MB = 500.0
TENANT = "bench-import"


def bench_import(url: str, out, rows: int = IMPORT_ROWS) -> dict:
    from hg_pipeline.imports.examples import write_spend_csv
    from hg_pipeline.warehouse.schema import upgrade
    from hg_pipeline.warehouse.tenants import Tenant, TenantError, add_tenant, get_tenant

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    engine = db.connect(url)
    upgrade(engine)
    try:
        get_tenant(engine, TENANT)
    except TenantError:
        add_tenant(engine, Tenant(tenant_id=TENANT, name="Bench MSP (import files)", source="import",
                                  base_url=None, credentials={}, notify_email=None))
    with tempfile.TemporaryDirectory(prefix="hg-bench-import-") as folder:
        started = time.perf_counter()
        path = write_spend_csv(Path(folder) / "spend.csv", rows)
        size_mb = path.stat().st_size / 2**20
        say(f"wrote {path.name}: {rows:,} lines, {size_mb:.0f} MiB in {time.perf_counter() - started:.1f} s")
        floor = timed_process([sys.executable, "-c", _COPY_SCRIPT, plain_url(url), str(path)], "COPY floor")
        say(f"floor (COPY of the file into a plain table):  {floor['wall_seconds']:7.1f} s   "
            f"peak RSS {floor['maxrss_mb']:6.0f} MiB")
        results = {"rows": rows, "file_mb": size_mb, "floor": floor}
        for label in ("first import", "same file again"):
            run = timed_process([*cli_command(), "import", TENANT, str(path), "--database-url", url],
                                f"hg-pipeline import {TENANT}")
            results[label] = run
            ratio = run["wall_seconds"] / floor["wall_seconds"] if floor["wall_seconds"] else float("nan")
            say(f"hg-pipeline import, {label + ':':<17}{run['wall_seconds']:7.1f} s ({ratio:4.1f}x the floor, "
                f"{rows / run['wall_seconds']:,.0f} lines/s)   peak RSS {run['maxrss_mb']:6.0f} MiB")
    peak = max(results["first import"]["maxrss_mb"], results["same file again"]["maxrss_mb"])
    verdict = "met" if peak < IMPORT_RSS_GOAL_MB else "MISSED"
    say(f"goal: peak RSS below {IMPORT_RSS_GOAL_MB:.0f} MB: {peak:.0f} MiB, {verdict}")
    return results


_COPY_SCRIPT = """
import sys, psycopg
url, path = sys.argv[1], sys.argv[2]
with psycopg.connect(url) as conn:
    conn.execute("CREATE TEMP TABLE spend_floor (id text, company_id text, product_id text, month text,"
                 " amount numeric, currency text, description text)")
    with conn.cursor().copy("COPY spend_floor FROM STDIN WITH (FORMAT csv, HEADER true)") as copy, \\
            open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            copy.write(chunk)
"""
