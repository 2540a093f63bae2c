"""dlt's rest_api source loading a ConnectWise simulator's endpoints into PostgreSQL, for
`hg-pipeline bench` (the comparison of issue 10).

Run by the bench as a script in a process of its own, with the Python that has dlt
(this venv's, or $HG_BENCH_DLT_PYTHON's): it imports nothing of hg_pipeline, so that
Python needs only `dlt[postgres]`. It reads one JSON object on stdin:

    {"api_root": ".../apis/3.0/", "username": "company+public", "password": "private",
     "client_id": "...", "paths": ["company/companies", ...], "page_size": 1000,
     "postgres_url": "postgresql://...", "dataset": "bench_dlt", "pipelines_dir": "/tmp/..."}

loads every path as a resource (primary key `id`, merge), and prints one JSON line:
{"run_seconds": s, "rows": n, "import_seconds": s}. A second run with the same
`pipelines_dir` is dlt's merge re-run.
"""

from __future__ import annotations

import json
import sys
import time


def main() -> int:
    started = time.perf_counter()
    import dlt
    from dlt.sources.rest_api import rest_api_source

    imported = time.perf_counter()
    config = json.load(sys.stdin)
    source = rest_api_source({
        "client": {
            "base_url": config["api_root"],
            "auth": {"type": "http_basic", "username": config["username"], "password": config["password"]},
            "headers": {"clientId": config["client_id"]},
            "paginator": {"type": "page_number", "base_page": 1, "page_param": "page", "total_path": None},
        },
        "resource_defaults": {
            "primary_key": "id",
            "write_disposition": "merge",
            "endpoint": {"params": {"pageSize": config["page_size"], "orderBy": "id asc"}},
        },
        "resources": [{"name": path.replace("/", "_"), "endpoint": {"path": path}} for path in config["paths"]],
    })
    pipeline = dlt.pipeline(pipeline_name="hg_bench_dlt", pipelines_dir=config["pipelines_dir"],
                            destination=dlt.destinations.postgres(credentials=config["postgres_url"]),
                            dataset_name=config["dataset"], progress=None)
    info = pipeline.run(source)
    ended = time.perf_counter()
    rows = sum(count for table, count in pipeline.last_trace.last_normalize_info.row_counts.items()
               if not table.startswith("_dlt"))
    print(json.dumps({"run_seconds": ended - imported, "import_seconds": imported - started, "rows": rows,
                      "failed_jobs": bool(info.has_failed_jobs)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
