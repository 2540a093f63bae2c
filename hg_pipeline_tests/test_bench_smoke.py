"""`hg-pipeline bench` end to end on the small dataset: sane figures, not timings."""

from __future__ import annotations

import io
import sys

import pytest
from sqlalchemy import text

from hg_pipeline.bench import (
    BASELINE_SCHEMA, BENCH_TENANT, CLI_TENANT, DLT_SCHEMA, FLOOR_SCHEMA, RATE_TENANT, BenchError, run_bench,
    timed_process,
)
from hg_pipeline.entities import LOADED_ENTITIES
from hg_pipeline.warehouse.load import live_counts


def test_bench_small_gives_sane_figures(pg_url, warehouse, tmp_path):
    with pytest.raises(BenchError, match="PostgreSQL"):
        run_bench(f"sqlite:///{tmp_path / 'w.db'}", dataset="small", out=io.StringIO())

    out = io.StringIO()
    figures = run_bench(pg_url, dataset="small", out=out, scale=2)

    assert figures["total_seconds"] > 0
    assert figures["records_per_second"] > 0
    stages = {(row["stage"], row["entity"]): row for row in figures["stages"]}
    for entity in LOADED_ENTITIES:
        for stage in ("extract", "map", "load"):
            row = stages[(stage, entity)]
            assert row["records"] > 0 and row["seconds"] > 0 and row["records_per_second"] > 0, row
    # what the bench says it loaded is what the warehouse holds
    live = live_counts(warehouse, BENCH_TENANT)
    assert figures["loaded"] == live == figures["live_counts"]
    assert figures["records_loaded"] == sum(live.values()) > 0
    # the remap reads staging only
    assert figures["psa_requests_full"] > 0
    assert figures["remap_psa_requests"] == 0
    assert figures["remap_seconds"] > 0
    assert figures["second_full_sync_seconds"] > 0 and figures["reconcile_seconds"] > 0
    # the incremental sync received exactly what the simulator changed (1%: at least one a kind)
    assert set(figures["incremental_touched"]) == {"companies", "contacts", "assets"}
    for entity, touched in figures["incremental_touched"].items():
        assert figures["incremental_received"][entity] == touched >= 1
    assert figures["incremental_seconds"] > 0 and figures["incremental_psa_requests"] > 0
    # the rate-limited sync kept to the rate and loaded everything; how little of the rate it left
    # unused is the bench's figure (goal 1.1), not asserted here: a busy machine moves it (CI saw 1.26)
    rate, requests = figures["rate_limit_rps"], figures["rate_limited_requests"]
    assert requests >= figures["rate_limited_api_requests"] > 0
    assert figures["rate_limited_seconds"] >= (requests - 1) / rate * 0.95
    assert figures["rate_limited_ratio"] == pytest.approx(figures["rate_limited_seconds"] / (requests / rate))
    assert figures["rate_limited_429s"] <= 1
    assert live_counts(warehouse, RATE_TENANT) == live
    # the COPY baseline copied the same rows, and left nothing behind
    for entity in LOADED_ENTITIES:
        assert figures["baseline"][entity]["rows"] == live[entity]
    assert figures["baseline"]["raw_records"]["rows"] == figures["records_extracted"]
    assert figures["baseline_total_seconds"] > 0 and figures["ratio_to_copy"] > 0
    assert figures["rss_peak_sync_mb"] > 0 and figures["rss_maxrss_mb"] >= figures["rss_peak_sync_mb"] * 0.5
    # the floor read every record the sync read, faster; every figure has its ratio to it
    assert figures["floor_records"] == figures["records_extracted_without_spend"]
    assert 0 < figures["floor_seconds"] < figures["total_seconds"]
    ratios = figures["ratios_to_floor"]
    for key in ("floor", "full", "full_cli", "second_full", "reconcile", "incremental", "remap", "remap_cli",
                "scale"):
        assert ratios[key] > 0, key
    assert ratios["full"] > 1 and ratios["floor"] == 1
    # the syncs as a user runs them: new processes, the remap slower than in process (imports)
    assert figures["remap_cli"]["wall_seconds"] > figures["remap_cli"]["run_seconds"] > 0
    assert figures["full_cli"]["maxrss_mb"] > 0
    assert live_counts(warehouse, CLI_TENANT) == live
    goals = {row["key"]: row for row in figures["goals"]}
    assert goals["full"]["met"] == (ratios["full"] <= 4) and goals["remap_cli"]["goal"] == "<= 6 s"
    # dlt: measured when installed, else said so
    dlt = figures["dlt"]
    if dlt["status"] == "measured":
        assert dlt["first"]["rows"] >= figures["records_extracted"] and dlt["merge"]["wall_seconds"] > 0
        assert goals["full_cli_to_dlt"]["value"] > 0
    else:
        assert 'not installed (pip install "dlt[postgres]")' in dlt["status"]
    # --scale 2: the dataset twice over, synced in a process of its own
    scaled = figures["scale"]
    assert scaled["dataset"] == "small-x2" and scaled["floor_records"] > figures["floor_records"]
    assert live_counts(warehouse, scaled["tenant"])["assets"] > live["assets"]
    assert scaled["sync"]["wall_seconds"] > 0 and scaled["sync"]["maxrss_mb"] > 0
    assert goals["scale_ratio"]["value"] > 0 and goals["scale_rss"]["met"] is not None
    with warehouse.connect() as conn:
        for schema in (BASELINE_SCHEMA, FLOOR_SCHEMA, DLT_SCHEMA, f"{DLT_SCHEMA}_staging"):
            assert conn.scalar(text("SELECT count(*) FROM information_schema.schemata WHERE schema_name = :s"),
                               {"s": schema}) == 0, schema
    printed = out.getvalue()
    print(printed)  # the real figures, with -s
    assert "a separate process" in printed
    for key in ("full_sync_seconds:", "second_full_sync_seconds:", "reconcile_seconds:", "remap_seconds:",
                "remap_psa_requests: 0", "copy_baseline_seconds:",
                "ratio_to_copy:", "rss_maxrss_mb:", "incremental_seconds:", "incremental_received: ",
                "incremental_psa_requests:", "rate_limited_seconds:", "rate_limited_requests:",
                "requests_over_rate_seconds:", "rate_limited_ratio:", "rate_limited_429s:", "floor_seconds:",
                "remap_cli_seconds:", "full_cli_seconds:", "dlt", "scale_full_sync_seconds:", "scale_ratio:",
                "scale_rss_mb:", "scale_simulator_start_seconds:", "x floor", "<= 4x floor"):
        assert key in printed


def test_a_timed_child_reports_its_own_peak_not_the_bench_s():
    """Linux hands a spawned child its parent's high-water mark in wait4's ru_maxrss; the bench
    held hundreds of MiB when it timed `sync --full`, so that figure was the bench's own."""
    ballast = bytearray(400 * 2**20)
    ballast[::4096] = b"\x01" * len(range(0, len(ballast), 4096))  # every page resident
    child = "x = bytearray(80 * 2**20); x[::4096] = b'\\x01' * len(range(0, len(x), 4096)); import time; time.sleep(0.3)"
    run = timed_process([sys.executable, "-c", child], "a child of 80 MiB")
    assert 80 <= run["maxrss_mb"] < 250, run
    del ballast


def test_a_timed_command_counts_the_processes_it_starts():
    """`sync --remap` starts its quality worker (great-expectations): the figure holds both."""
    grandchild = "x = bytearray(80 * 2**20); x[::4096] = b'\\x01' * len(range(0, len(x), 4096)); import time; time.sleep(0.6)"
    child = (f"import subprocess, sys; subprocess.run([sys.executable, '-c', {grandchild!r}], check=True)")
    run = timed_process([sys.executable, "-c", child], "a child whose own child holds 80 MiB")
    assert run["maxrss_mb"] >= 80 + 5, run  # the grandchild's 80 MiB and the child's own interpreter
