"""`hg-pipeline bench`: a full sync of a simulated MSP into PostgreSQL, with figures.

What it measures, with the PSA simulator of `--source` in a process of its own (in this one
it would compete for the interpreter lock and the figures would lie):

1. the full sync (`run_sync(..., "full")`) of tenant `bench`: per stage (extract / map / load
   of every entity) the records and records/s, from the Dagster step start/end times of the
   run, and the total;
2. a second full sync with nothing changed (it maps a delta of nothing), then a reconcile
   (a full sync that maps every record again, as the weekly one does);
3. an incremental sync (`run_sync(..., "nightly")`) after 1% of the companies, contacts and
   assets changed in the PSA (the simulator's `/_simulator/touch` control): its seconds
   (goal <= 5 s), the records it received per entity and its PSA requests;
4. a remap (`run_sync(..., "remap")`) of a changed mapping (the Backup category moved: a products
   rule), which must make no PSA request (the simulator counts);
5. the rate-limited full sync: a second simulator process (small dataset) that answers 429
   beyond RATE_LIMIT_RPS requests a second, and a tenant `bench_rate` told that rate
   (`requests_per_second`). Its extraction time (first extract step start to last extract
   step end) against requests / rate says how much of the budget the pipeline leaves unused
   (goal <= 1.1; requests: all the connectors made, the API's and those outside it such as
   sign-in, since the connectors pace them all), and the simulator counts the 429s it answered;
6. the floor (issue 10): a minimal fetch of every page the sync reads (same simulator, same
   endpoints and page size, plain `requests` with a pooled session, 4 pages in flight as the
   ConnectWise connector) plus a COPY of each record's JSON text into an empty table; every
   figure is also printed as a ratio to it (ConnectWise only: other sources print that it is
   not measured);
7. the syncs as a user runs them: `hg-pipeline sync bench --remap` and `hg-pipeline sync
   bench_cli --full` (a tenant of its own on the same simulator, so a first full sync) in new
   processes, process start and imports included; their wall time and peak RSS (the child's own VmHWM);
8. dlt's rest_api source on the same endpoints into schema bench_dlt (first run and merge
   re-run, each a process of its own), when this Python or $HG_BENCH_DLT_PYTHON has dlt;
9. with `--scale N`: a simulator serving the dataset N times over (`large-x10`), its floor and
   `hg-pipeline sync bench_xN --full` in a new process: time, ratio to the dataset's own
   `sync --full`, peak RSS, and the simulator's generation time and peak RSS;
10. the goals of issue 10 next to the figures, met or MISSED.

The earlier baseline: a raw `COPY ... FROM STDIN` (psycopg 3, `write_row`) of the very rows the
   sync left in `hg.raw_records` and in every loaded table, into empty twins
   (`CREATE TABLE bench_baseline.x (LIKE hg.x INCLUDING ALL)`). The ratio pipeline /
   COPY says how far the pipeline is from the database's own bulk-load speed.

Output lines are `key: value` or fixed-width table rows, so they can be grepped.
The peak RSS is the pipeline's alone.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack, contextmanager, redirect_stderr

from hg_pipeline.cli import InputError
from hg_pipeline.entities import LOADED_ENTITIES, STAGED_ENTITIES
from hg_pipeline.warehouse import db

BENCH_TENANT = "bench"
RATE_TENANT = "bench_rate"
BASELINE_SCHEMA = "bench_baseline"
ADMIN_URL_ENV = "HG_TEST_PG_URL"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432"
# The tenant's credentials are env: references to these variables, as a real tenant's are.
BENCH_ENV_PREFIX = "HG_BENCH_PSA_"
SIMULATOR_START_SECONDS = 300  # generating the large dataset takes a while
PEAK_POLL_SECONDS = 0.02  # how often a timed child's high-water mark is read
# Issue 10's goals on the large dataset: full sync <= 4x the floor, a second full sync with
# nothing changed <= 3x, remap <= 6 s as a user runs it (process start and imports included),
# peak RSS <= 600 MiB; at --scale 10, <= 11x the large full sync and <= 1 GiB.
FULL_GOAL_RATIO = 4.0
SECOND_GOAL_RATIO = 3.0
REMAP_GOAL_SECONDS = 6.0
RSS_GOAL_MB = 600.0
SCALE_GOAL_RATIO = 11.0
SCALE_RSS_GOAL_MB = 1024.0
# The floor: every page the sync reads, fetched as plainly as can be with as many pages in
# flight as the connector (ConnectWise: 4), and its records' JSON text COPYed into one table.
FLOOR_SCHEMA = "bench_floor"
FLOOR_PAGES_IN_FLIGHT = 4
FLOOR_PAGE_SIZE = 1000
CLI_TENANT = "bench_cli"  # a first full sync as a user runs it: `hg-pipeline sync bench_cli --full`
DLT_SCHEMA = "bench_dlt"
DLT_PYTHON_ENV = "HG_BENCH_DLT_PYTHON"  # a Python with dlt[postgres], when not this one
# The tenant `bench` declares its simulator's rate, as test tenants do: the simulator has no
# limit, so neither has the tenant (the vendors' default rates, e.g. HaloPSA's 0.9/s, would make
# the figures those of the rate, not of the pipeline; the rate-limited sync measures that).
BENCH_REQUESTS_PER_SECOND = 1000.0  # the most a tenant may declare
INCREMENTAL_SHARE = 0.01  # of the companies, contacts and assets changed before the incremental sync
INCREMENTAL_GOAL_SECONDS = 5.0
# The small dataset's full sync needs 9 to 19 requests, so at one request a second the
# requests span 10-20 s: long enough that Dagster's per-step overhead does not decide the ratio.
RATE_LIMIT_RPS = 1.0
RATE_LIMIT_DATASET = "small"
RATE_GOAL_RATIO = 1.1
# The dataset kinds the touch control changes -> the pipeline's entity names.
TOUCHED_ENTITIES = {"companies": "companies", "contacts": "contacts", "configurations": "assets"}


class BenchError(InputError):
    """The bench cannot run (bad database URL, failed sync...); the message says why.
    An InputError so that `hg-pipeline bench` prints it on one line and exits 2."""


# --- entry point ------------------------------------------------------------------------

def run_bench(database_url: str | None, *, dataset: str = "large", source: str = "connectwise", out=None,
              scale: int | None = None) -> dict:
    """Run the benchmark and print its figures; returns them as a dict.

    `database_url`: a PostgreSQL URL to use as is (the tenant `bench` and the schema
    `bench_baseline` are created in it), or None for a fresh database `hg_bench_<random>`
    on $HG_TEST_PG_URL (default postgresql://postgres@127.0.0.1:5432), dropped at the end.
    `scale`: also a full sync of `dataset` scaled that many times (e.g. 10).
    """
    out = out or sys.stdout
    if database_url is not None:
        _require_postgres(database_url)
    from hg_pipeline.connectors.registry import source as source_spec

    with ExitStack() as stack:
        terminated = stack.enter_context(_terminate_cleanly())
        url, created = stack.enter_context(_database(database_url))
        if source_spec(source).pushed:  # no PSA to simulate: files are what such a tenant brings
            from hg_pipeline.bench_import import bench_import

            return bench_import(url, out)
        try:
            return _bench(url, dataset, source, out, created_database=created, scale=scale)
        except BenchError as exc:
            # A SIGTERM during a run reaches Dagster's own handler, which fails the run with
            # DagsterExecutionInterruptedError: say what happened, not how Dagster put it.
            if terminated or "ExecutionInterrupted" in str(exc):
                raise BenchError("stopped by SIGTERM; its simulators stop and its fresh database is dropped") from None
            raise


@contextmanager
def _terminate_cleanly():
    """SIGTERM (a CI timeout, `kill`) ends the bench like Ctrl-C: the simulator processes stop
    and the fresh database is dropped, instead of both being left behind."""
    terminated: list[int] = []

    def stop(signum, frame):
        terminated.append(signum)
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread: leave signals alone
        yield terminated
        return
    try:
        yield terminated
    finally:
        signal.signal(signal.SIGTERM, previous)


def _require_postgres(url: str) -> None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:
        raise BenchError(f"bad database URL {db.safe_url(url)!r}") from None
    if backend != "postgresql":
        raise BenchError(f"the bench measures PostgreSQL bulk loads; {db.safe_url(url)} is {backend}: "
                         "pass --database-url postgresql+psycopg://... or omit it for a fresh database")


@contextmanager
def _database(url: str | None):
    """(url, created): the given URL, or a fresh database dropped on exit."""
    if url is not None:
        yield url, None
        return
    import psycopg

    admin = os.environ.get(ADMIN_URL_ENV, DEFAULT_ADMIN_URL).rstrip("/")
    name = f"hg_bench_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(f"{admin}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        raise BenchError(f"cannot create a bench database on {db.safe_url(admin)}: "
                         f"{str(exc).strip().splitlines()[0]}") from None
    fresh = f"{admin.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"
    try:
        yield fresh, name
    finally:
        db.dispose(fresh)
        with psycopg.connect(f"{admin}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the run ----------------------------------------------------------------------------

def _bench(url: str, dataset_name: str, source_name: str, out, *, created_database: str | None,
           scale: int | None = None) -> dict:
    from dagster import DagsterInstance

    from hg_pipeline.connectors.registry import source
    from hg_pipeline.orchestration.run import run_sync
    from hg_pipeline.warehouse.load import live_counts
    from hg_pipeline.warehouse.schema import upgrade

    def say(line: str = "") -> None:
        print(line, file=out, flush=True)

    engine = db.connect(url)
    t0 = time.perf_counter()
    upgrade(engine)
    upgrade_seconds = time.perf_counter() - t0

    spec = source(source_name)
    demo_credentials = spec.simulator_module().DEMO_CREDENTIALS
    rss_before_sync = _current_rss_mb()

    say(f"bench: {source_name} dataset {dataset_name} seed 1 -> {db.safe_url(url)}"
        + (" (fresh database, dropped at the end)" if created_database else ""))
    say(f"upgrade_seconds: {upgrade_seconds:.2f}")

    figures: dict = {
        "source": source_name,
        "dataset": dataset_name,
        "database": db.safe_url(url),
        "upgrade_seconds": upgrade_seconds,
    }
    env_vars = {key: f"{BENCH_ENV_PREFIX}{key.upper()}" for key in demo_credentials}
    for key, var in env_vars.items():
        os.environ[var] = demo_credentials[key]

    with ExitStack() as stack:
        home = stack.enter_context(tempfile.TemporaryDirectory(prefix="hg-bench-dagster-"))
        instance = stack.enter_context(DagsterInstance.local_temp(tempdir=home))
        t0 = time.perf_counter()
        simulator = stack.enter_context(_simulator_process(source_name, dataset_name))
        # The vendors' limits (HaloPSA 300 per 5 minutes...) would make the syncs after the first
        # figures of the rate; the rate-limited sync below measures that on its own.
        simulator.limit_rate(0, 1.0)
        say(f"simulator_start_seconds: {time.perf_counter() - t0:.2f} (its own process, pid {simulator.pid})")
        _register_tenant(engine, spec, BENCH_TENANT, simulator.base_url, env_vars,
                         requests_per_second=BENCH_REQUESTS_PER_SECOND)
        mapping_version = _store_mapping(engine, BENCH_TENANT)
        say(f"simulator: {simulator.base_url} (a separate process: not in this process's RSS;"
            f" no rate limit, and tenant {BENCH_TENANT} declares {BENCH_REQUESTS_PER_SECOND:g} requests/s)")
        say(f"mapping_version: {mapping_version} (default document, auto_import_new_categories: true)")
        # Dagster's console logger writes every event to stderr; keep it in a file instead.
        log = stack.enter_context(tempfile.NamedTemporaryFile(
            "w", prefix=f"hg-bench-{dataset_name}-", suffix=".dagster.log", delete=False))
        say(f"dagster_log: {log.name}")
        stack.enter_context(redirect_stderr(log))

        # -- the floor: fetch + COPY of the same pages
        floor = _floor(source_name, simulator.base_url, demo_credentials, url)
        say("floor_seconds: " + (f"{floor['floor_seconds']:.2f} ({floor['floor_records']} records,"
                                 f" {floor['floor_requests']} requests)" if floor["floor_seconds"]
                                 else f"not measured for {source_name} (ConnectWise only)"))

        # -- full sync
        requests_before = simulator.requests
        with _RssSampler() as sampler:
            outcome = run_sync(url, BENCH_TENANT, "full", instance=instance)
        if not outcome.success:
            raise BenchError(f"full sync failed at {outcome.failed_step}: {outcome.reason}")
        full_requests = simulator.requests - requests_before
        steps = _step_seconds(instance, outcome.run_id)
        stages = _stage_rows(outcome.stages, steps)
        live = live_counts(engine, BENCH_TENANT)

        # -- the same sync again: nothing changed in the PSA
        second = run_sync(url, BENCH_TENANT, "full", instance=instance)
        if not second.success:
            raise BenchError(f"second full sync failed at {second.failed_step}: {second.reason}")
        # -- and the reconcile: a full sync that maps every record again (the weekly one)
        reconcile = run_sync(url, BENCH_TENANT, "full", instance=instance, reconcile=True)
        if not reconcile.success:
            raise BenchError(f"reconcile failed at {reconcile.failed_step}: {reconcile.reason}")

        # -- 1% of the records changed in the PSA, then an incremental sync
        touched = simulator.touch(INCREMENTAL_SHARE)
        requests_before = simulator.requests
        incremental = run_sync(url, BENCH_TENANT, "nightly", instance=instance)
        incremental_requests = simulator.requests - requests_before
        if not incremental.success:
            raise BenchError(f"incremental sync failed at {incremental.failed_step}: {incremental.reason}")
        incremental_stages = _stage_rows(incremental.stages, _step_seconds(instance, incremental.run_id))

        # -- remap of a changed mapping (a products rule): the staged records only, no PSA request
        _store_remap_version(engine, BENCH_TENANT, moved=True)
        requests_before = simulator.requests
        remap_started = time.perf_counter()
        remap = run_sync(url, BENCH_TENANT, "remap", instance=instance)
        remap_wall = time.perf_counter() - remap_started
        remap_requests = simulator.requests - requests_before
        if not remap.success:
            raise BenchError(f"remap failed at {remap.failed_step}: {remap.reason}")
        remap_steps = _step_seconds(instance, remap.run_id)
        remap_stages = _stage_rows(remap.stages, remap_steps)

        # -- as a user runs them: new processes, imports included
        _store_remap_version(engine, BENCH_TENANT, moved=False)
        remap_cli = _cli_sync(url, BENCH_TENANT, "--remap", home)
        _register_tenant(engine, spec, CLI_TENANT, simulator.base_url, env_vars,
                         requests_per_second=BENCH_REQUESTS_PER_SECOND)
        _store_mapping(engine, CLI_TENANT)
        full_cli = _cli_sync(url, CLI_TENANT, "--full", home)

        # -- dlt's rest_api source on the same endpoints
        dlt_runs = _dlt_runs(source_name, simulator.base_url, demo_credentials, url)

        # -- a full sync against a rate-limited PSA
        rate_limited = _rate_limited_sync(stack, url, engine, spec, env_vars, instance)

        # -- the dataset N times over
        scaled = (_scale_run(stack, scale, url, engine, spec, env_vars, home, dataset_name, demo_credentials)
                  if scale else {})

    rss_maxrss_mb = _maxrss_mb()

    # -- baseline: raw COPY of the same rows
    baseline = _copy_baseline(url)

    # -- figures
    step_total = sum(steps.values())
    extract_seconds = sum(r["seconds"] for r in stages if r["stage"] == "extract")
    map_seconds = sum(r["seconds"] for r in stages if r["stage"] == "map")
    load_seconds = sum(r["seconds"] for r in stages if r["stage"] == "load")
    loaded = {e: next((r["records"] for r in stages if r["stage"] == "load" and r["entity"] == e), 0)
              for e in LOADED_ENTITIES}
    extracted = sum(r["records"] for r in stages if r["stage"] == "extract")
    # Spend lines are one per addition and month: the floor reads the same pages but counts no lines.
    extracted_lists = sum(r["records"] for r in stages if r["stage"] == "extract" and r["entity"] != "spend")
    baseline_total = sum(b["seconds"] for b in baseline.values())
    for row in stages:
        if row["stage"] == "load" and row["entity"] in baseline:
            row["copy_seconds"] = baseline[row["entity"]]["seconds"]
            row["ratio_to_copy"] = _ratio(row["seconds"], row["copy_seconds"])

    figures.update({
        "tenant": BENCH_TENANT,
        "run_id": outcome.run_id,
        "total_seconds": outcome.seconds,
        "second_full_sync_seconds": second.seconds,
        "reconcile_seconds": reconcile.seconds,
        "incremental_seconds": incremental.seconds,
        "incremental_goal_seconds": INCREMENTAL_GOAL_SECONDS,
        "incremental_within_goal": incremental.seconds <= INCREMENTAL_GOAL_SECONDS,
        "incremental_touched": {TOUCHED_ENTITIES[kind]: n for kind, n in touched.items()},
        "incremental_received": _received(incremental.stages),
        "incremental_psa_requests": incremental_requests,
        "incremental_stages": incremental_stages,
        **rate_limited,
        "steps_seconds": step_total,
        "extract_seconds": extract_seconds,
        "map_seconds": map_seconds,
        "load_seconds": load_seconds,
        "records_extracted": extracted,
        "records_extracted_without_spend": extracted_lists,
        "records_loaded": sum(loaded.values()),
        "loaded": loaded,
        "live_counts": live,
        "records_per_second": extracted / outcome.seconds if outcome.seconds else 0.0,
        "loaded_per_second": sum(loaded.values()) / outcome.seconds if outcome.seconds else 0.0,
        "psa_requests_full": full_requests,
        "stages": stages,
        "rss_before_sync_mb": rss_before_sync,
        "rss_peak_sync_mb": sampler.peak_mb,
        "rss_maxrss_mb": rss_maxrss_mb,
        "remap_seconds": remap.seconds,
        "remap_wall_seconds": remap_wall,
        "remap_psa_requests": remap_requests,
        "remap_goal_seconds": REMAP_GOAL_SECONDS,
        "remap_within_goal": remap_cli["wall_seconds"] <= REMAP_GOAL_SECONDS,
        "remap_stages": remap_stages,
        "baseline": baseline,
        "baseline_total_seconds": baseline_total,
        "ratio_to_copy": _ratio(outcome.seconds, baseline_total),
        "load_ratio_to_copy": _ratio(load_seconds, sum(b["seconds"] for e, b in baseline.items() if e in loaded)),
        **floor,
        "remap_cli": remap_cli,
        "full_cli": full_cli,
        "dlt": dlt_runs,
        "scale": scaled,
    })
    figures["goals"] = _goals(figures)
    figures["ratios_to_floor"] = {row["key"]: row["ratio"] for row in figures["goals"] if row["ratio"] is not None}
    _print_report(figures, say)
    return figures


class _SimulatorProcess:
    def __init__(self, process: subprocess.Popen, port: int) -> None:
        self.process, self.pid, self.port = process, process.pid, port
        self.base_url = f"http://127.0.0.1:{port}"

    @property
    def requests(self) -> int:
        """API requests the simulator has served (its own counter, read over HTTP)."""
        from hg_pipeline.simulators.base import STATS_PATH

        return int(self._control("GET", STATS_PATH)["requests"])

    def stats(self) -> dict[str, int]:
        """Its counters: `requests` (API), `outside_api` (sign-in, discovery...), `rejected` (429s)."""
        from hg_pipeline.simulators.base import STATS_PATH

        return self._control("GET", STATS_PATH)

    def touch(self, share: float, seed: int = 1) -> dict[str, int]:
        """Change `share` of its companies, contacts and configurations now; kind -> count."""
        from hg_pipeline.simulators.base import TOUCH_PATH

        return self._control("POST", TOUCH_PATH, share=share, seed=seed)["changed"]

    def limit_rate(self, max_requests: int, window_seconds: float) -> None:
        """Answer 429 beyond `max_requests` in any `window_seconds`, as a vendor does."""
        from hg_pipeline.simulators.base import RATE_LIMIT_PATH

        self._control("POST", RATE_LIMIT_PATH, requests=max_requests, seconds=window_seconds)

    def _control(self, method: str, path: str, **params) -> dict:
        import requests

        answer = requests.request(method, self.base_url + path, params=params, timeout=60)
        answer.raise_for_status()
        return answer.json()


@contextmanager
def _simulator_process(source_name: str, dataset_name: str, scale: int = 1):
    """`hg-pipeline simulate SOURCE` in a process of its own, until the bench ends."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "hg_pipeline.cli", "simulate", source_name, "--port", str(port),
         "--dataset", dataset_name, "--scale", str(scale), "--seed", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    simulator = _SimulatorProcess(process, port)
    try:
        deadline = time.monotonic() + SIMULATOR_START_SECONDS
        while True:
            if process.poll() is not None:
                raise BenchError(f"the {source_name} simulator did not start: "
                                 f"{(process.stderr.read() or 'no reason given').strip().splitlines()[-1]}")
            try:
                simulator.requests
                break
            except (OSError, ValueError, KeyError):
                if time.monotonic() > deadline:
                    raise BenchError(f"the {source_name} simulator did not answer within "
                                     f"{SIMULATOR_START_SECONDS} s") from None
                time.sleep(0.2)
        yield simulator
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _register_tenant(engine, spec, tenant_id: str, base_url: str, env_vars: dict[str, str], *,
                     requests_per_second: float | None = None) -> None:
    from sqlalchemy import update

    from hg_pipeline.warehouse.tables import tenants
    from hg_pipeline.warehouse.tenants import Tenant, TenantError, add_tenant, get_tenant

    credentials = {key: f"env:{var}" for key, var in env_vars.items()}
    try:
        get_tenant(engine, tenant_id)
    except TenantError:
        add_tenant(engine, Tenant(
            tenant_id=tenant_id, name=f"Bench MSP (simulated {spec.title})", source=spec.name,
            base_url=base_url, credentials=credentials, notify_email=None,
            requests_per_second=requests_per_second,
        ))
        return
    with engine.begin() as conn:  # a tenant left by an earlier bench in a given database: new port
        conn.execute(update(tenants).where(tenants.c.tenant_id == tenant_id).values(
            base_url=base_url, requests_per_second=requests_per_second))


def bench_document() -> str:
    """The default mapping with new PSA categories imported, so that most products map."""
    from hg_pipeline.mapping.document import default_document

    document = default_document()
    flag = "auto_import_new_categories: false"
    if flag not in document:
        raise BenchError("the default mapping no longer has `auto_import_new_categories: false`")
    return document.replace(flag, "auto_import_new_categories: true", 1)


def _store_mapping(engine, tenant_id: str) -> int:
    from hg_pipeline.mapping.document import parse_document
    from hg_pipeline.warehouse.mappings import current_mapping, store_mapping

    document = bench_document()
    parse_document(document)
    stored = current_mapping(engine, tenant_id)
    if stored is not None and stored.document == document:
        return stored.version
    return store_mapping(engine, tenant_id, document).version


# What each remap re-applies: the Backup category moved (a products rule), as an MSP refines its
# mapping; the in-process remap moves it, the user-run one moves it back.
REMAP_RULES = ("Backup: {action: map, to: Backup & Recovery/Backup Software}",
               "Backup: {action: map, to: Backup & Recovery/Business Continuity}")


def _store_remap_version(engine, tenant_id: str, moved: bool) -> int:
    """The bench document with the Backup rule moved (or not) as a new mapping version."""
    from hg_pipeline.warehouse.mappings import store_mapping

    document = bench_document()
    if REMAP_RULES[0] not in document:
        raise BenchError("the default mapping no longer maps Backup to Backup & Recovery/Backup Software")
    if moved:
        document = document.replace(*REMAP_RULES, 1)
    return store_mapping(engine, tenant_id, document, comment="bench: Backup moved" if moved else
                         "bench: Backup back").version


def _received(stages: dict[str, dict]) -> dict[str, int]:
    """entity -> records its extract step received in a run."""
    return {e: int(stages[f"{e}_raw"].get("received", 0) or 0)
            for e in STAGED_ENTITIES if f"{e}_raw" in stages}


# --- the rate-limited sync --------------------------------------------------------------

def _rate_limited_sync(stack: ExitStack, url: str, engine, spec, env_vars: dict[str, str], instance) -> dict:
    """A full sync of tenant `bench_rate` (told RATE_LIMIT_RPS) against a simulator process of
    its own that answers 429 beyond that many requests a second."""
    from hg_pipeline.orchestration.run import run_sync

    simulator = stack.enter_context(_simulator_process(spec.name, RATE_LIMIT_DATASET))
    simulator.limit_rate(max(1, round(RATE_LIMIT_RPS)), 1.0)
    _register_tenant(engine, spec, RATE_TENANT, simulator.base_url, env_vars,
                     requests_per_second=RATE_LIMIT_RPS)
    _store_mapping(engine, RATE_TENANT)
    outcome = run_sync(url, RATE_TENANT, "full", instance=instance)
    if not outcome.success:
        raise BenchError(f"rate-limited full sync failed at {outcome.failed_step}: {outcome.reason}")
    extract_started, extract_ended = _extract_span(_step_times(instance, outcome.run_id))
    seconds = extract_ended - extract_started
    stats = simulator.stats()
    # The connectors pace every request they make, the API's and those outside it (sign-in,
    # discovery), so the time is measured against all of them.
    requests = stats["requests"] + stats["outside_api"]
    over_rate = requests / RATE_LIMIT_RPS
    return {
        "rate_limit_rps": RATE_LIMIT_RPS,
        "rate_limited_dataset": RATE_LIMIT_DATASET,
        "rate_limited_seconds": seconds,
        "rate_limited_sync_seconds": outcome.seconds,
        "rate_limited_requests": requests,
        "rate_limited_api_requests": stats["requests"],
        "requests_over_rate_seconds": over_rate,
        "rate_limited_ratio": _ratio(seconds, over_rate),
        "rate_limited_within_goal": _ratio(seconds, over_rate) <= RATE_GOAL_RATIO,
        "rate_limited_429s": stats["rejected"],
    }


# --- the floor: fetch + COPY ------------------------------------------------------------

def _floor(source_name: str, base_url: str, credentials: dict[str, str], url: str) -> dict:
    """Seconds to fetch every page of every endpoint the ConnectWise sync reads (its /count
    first, then pages of FLOOR_PAGE_SIZE, FLOOR_PAGES_IN_FLIGHT at once through one pooled
    session) and COPY each record's JSON text into an empty table, committed. Other sources:
    floor_seconds None."""
    if source_name != "connectwise":
        return {"floor_seconds": None, "floor_records": 0, "floor_requests": 0}
    import psycopg
    import requests

    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=FLOOR_PAGES_IN_FLIGHT + 2))
    session.auth = (f"{credentials['company_id']}+{credentials['public_key']}", credentials["private_key"])
    session.headers["clientId"] = credentials["client_id"]
    table = f"{FLOOR_SCHEMA}.raw_records"
    with psycopg.connect(plain_url(url)) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {FLOOR_SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {FLOOR_SCHEMA}")
        conn.execute(f"CREATE TABLE {table} (entity text NOT NULL, psa_id text NOT NULL, payload text NOT NULL)")
        conn.commit()
        try:
            started = time.perf_counter()
            records, requests_made = _fetch_and_copy(session, base_url, credentials["company_id"], conn, table)
            conn.commit()
            seconds = time.perf_counter() - started
        finally:
            conn.rollback()
            conn.execute(f"DROP SCHEMA IF EXISTS {FLOOR_SCHEMA} CASCADE")
            conn.commit()
            session.close()
    return {"floor_seconds": seconds, "floor_records": records, "floor_requests": requests_made}


def _fetch_and_copy(session, base_url: str, company_id: str, conn, table: str) -> tuple[int, int]:
    """(records, requests): the pages read in order, at most FLOOR_PAGES_IN_FLIGHT ahead."""
    import json
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor
    from itertools import islice

    from hg_pipeline.connectors.connectwise import ENDPOINTS  # the endpoints the sync reads

    def get_json(address: str, **params):
        answer = session.get(address, params=params, timeout=60)
        answer.raise_for_status()
        return json.loads(answer.content)

    api_root = _api_root(get_json, base_url, company_id)
    pages = []
    for entity, endpoints in ENDPOINTS.items():
        for endpoint in endpoints:
            count = int(get_json(api_root + endpoint.path + "/count")["count"])
            pages += [(entity, endpoint, number) for number in range(1, -(-count // FLOOR_PAGE_SIZE) + 1)]

    def fetch(page):
        entity, endpoint, number = page
        return entity, endpoint.id_prefix, get_json(api_root + endpoint.path, page=number,
                                                   pageSize=FLOOR_PAGE_SIZE, orderBy="id asc")

    records = 0
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    with ThreadPoolExecutor(FLOOR_PAGES_IN_FLIGHT) as pool, conn.cursor() as cursor, \
            cursor.copy(f"COPY {table} (entity, psa_id, payload) FROM STDIN") as copy:
        waiting = iter(pages)
        in_flight = deque(pool.submit(fetch, page) for page in islice(waiting, FLOOR_PAGES_IN_FLIGHT))
        while in_flight:
            entity, prefix, body = in_flight.popleft().result()
            following = next(waiting, None)
            if following is not None:
                in_flight.append(pool.submit(fetch, following))
            for record in body:
                copy.write_row((entity, f"{prefix}{record['id']}", dumps(record)))
            records += len(body)
        spend_requests = _fetch_spend(get_json, api_root, pool, copy, dumps)
    return records, 1 + sum(len(endpoints) for endpoints in ENDPOINTS.values()) + len(pages) + spend_requests


def _fetch_spend(get_json, api_root: str, pool, copy, dumps) -> int:
    """What the sync reads for spend (connectors/cw_spend.py), fetched and COPYed the same
    minimal way: the active agreements, each one's additions (one request per agreement,
    FLOOR_PAGES_IN_FLIGHT at once), the invoices and the invoiced product items. Returns the
    requests made (the payloads are not counted as records: the sync stages lines per month)."""
    made = 0

    def listed(path: str, **params) -> list:
        nonlocal made
        found, number = [], 1
        while True:
            body = get_json(api_root + path, page=number, pageSize=FLOOR_PAGE_SIZE, orderBy="id asc", **params)
            made += 1
            found += body
            if len(body) < FLOOR_PAGE_SIZE:
                return found
            number += 1

    agreements = listed("finance/agreements", conditions='agreementStatus="Active"')
    for agreement, additions in zip(agreements, pool.map(
            lambda a: get_json(api_root + f"finance/agreements/{a['id']}/additions", pageSize=FLOOR_PAGE_SIZE,
                               orderBy="id asc"), agreements)):
        made += 1
        for record in [agreement, *additions]:
            copy.write_row(("spend", str(record["id"]), dumps(record)))
    for path in ("finance/invoices", "procurement/products"):
        for record in listed(path):
            copy.write_row(("spend", str(record["id"]), dumps(record)))
    return made


def _api_root(get_json, base_url: str, company_id: str) -> str:
    """The ConnectWise API root, its codebase looked up as the connector does."""
    codebase = get_json(f"{base_url}/login/companyinfo/{company_id}")["Codebase"].strip("/")
    return f"{base_url}/{codebase}/apis/3.0/"


def plain_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


# --- the syncs as a user runs them -------------------------------------------------------

def cli_command() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "hg-pipeline")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "hg_pipeline.cli"]


def _cli_sync(url: str, tenant_id: str, flag: str, dagster_home: str) -> dict:
    """`hg-pipeline sync TENANT FLAG` in a new process (the bench's database and Dagster home):
    its wall time from spawn to exit, the run's own seconds (its output) and its peak RSS."""
    import re

    label = f"hg-pipeline sync {tenant_id} {flag}"
    run = timed_process([*cli_command(), "sync", tenant_id, flag, "--database-url", url], label,
                        env={**os.environ, "DAGSTER_HOME": dagster_home})
    found = re.search(r"success in ([0-9.]+)s", run["output"])
    return {"command": label, "wall_seconds": run["wall_seconds"],
            "run_seconds": float(found.group(1)) if found else None, "maxrss_mb": run["maxrss_mb"]}


def timed_process(command: list[str], label: str, env: dict[str, str] | None = None) -> dict:
    """Run `command` to its end: wall time from spawn to exit, its own peak RSS and what it
    printed; BenchError naming `label` and its last line when it fails.

    The peak is the child's VmHWM, read while it runs, or, when more, the resident sets of it
    and the processes it started (a remap's quality worker, Dagster's log tailers) summed at one
    moment; not a sum of peaks, as those helpers come and go and never all run together.
    Not wait4's ru_maxrss: Linux carries the
    parent's high-water mark into a child it spawns (exec keeps the larger of the old and new
    address space's), so a child of this bench, which holds hundreds of MiB by then, would be
    reported at least as large as the bench itself."""
    with tempfile.TemporaryFile("w+") as output:
        started = time.perf_counter()
        # Popen returns once the child has exec'd: from here /proc shows the command's own memory.
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, text=True, env=env)
        peak = 0.0
        while process.poll() is None:
            together = sum(_status_mb(pid, "VmRSS") for pid in (process.pid, *_children(process.pid)))
            peak = max(peak, _process_peak_mb(process.pid), together)
            time.sleep(PEAK_POLL_SECONDS)
        wall = time.perf_counter() - started
        output.seek(0)
        printed = output.read()
    if process.returncode != 0:
        raise BenchError(f"`{label}` failed: {(printed.strip().splitlines() or ['no output'])[-1]}")
    return {"wall_seconds": wall, "maxrss_mb": peak, "output": printed.strip()}


# --- dlt ---------------------------------------------------------------------------------

def _dlt_runs(source_name: str, base_url: str, credentials: dict[str, str], url: str) -> dict:
    """dlt's rest_api source loading the ConnectWise endpoints the sync reads into schema
    bench_dlt: a first run and a merge re-run, each `bench_dlt.py` in a process of its own
    (wall time, imports included). {"status": why not} when it cannot run."""
    if source_name != "connectwise":
        return {"status": f"not measured for {source_name} (ConnectWise only)"}
    python = os.environ.get(DLT_PYTHON_ENV) or sys.executable
    probe = subprocess.run([python, "-I", "-c", "import dlt"], capture_output=True)
    if probe.returncode != 0:
        where = f" in ${DLT_PYTHON_ENV} ({python})" if os.environ.get(DLT_PYTHON_ENV) else ""
        return {"status": f'not installed{where} (pip install "dlt[postgres]")'}
    from hg_pipeline.connectors.connectwise import ENDPOINTS

    import requests

    script = os.path.join(os.path.dirname(__file__), "bench_dlt.py")
    api_root = _api_root(lambda address: requests.get(address, timeout=60).json(), base_url, credentials["company_id"])
    with tempfile.TemporaryDirectory(prefix="hg-bench-dlt-") as pipelines_dir:
        config = json.dumps({
            "api_root": api_root,
            "username": f"{credentials['company_id']}+{credentials['public_key']}",
            "password": credentials["private_key"], "client_id": credentials["client_id"],
            "paths": [e.path for endpoints in ENDPOINTS.values() for e in endpoints],
            "page_size": FLOOR_PAGE_SIZE, "postgres_url": _dlt_postgres_url(url), "dataset": DLT_SCHEMA,
            "pipelines_dir": pipelines_dir,
        })
        _drop_dlt_schemas(url)
        try:
            runs = {name: _dlt_run(python, script, config, pipelines_dir) for name in ("first", "merge")}
        finally:
            _drop_dlt_schemas(url)
    return {"status": "measured", "python": python, **runs}


def _dlt_run(python: str, script: str, config: str, cwd: str) -> dict:
    # -I: the script's folder (hg_pipeline, with its own `secrets` module) stays off sys.path.
    started = time.perf_counter()
    done = subprocess.run([python, "-I", script], input=config, capture_output=True, text=True, cwd=cwd)
    wall = time.perf_counter() - started
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchError(f"the dlt run failed: {reason}")
    result = json.loads(lines[-1])
    if result.get("failed_jobs"):
        raise BenchError("the dlt run left failed load jobs")
    return {"wall_seconds": wall, "run_seconds": result["run_seconds"], "rows": result["rows"]}


def _dlt_postgres_url(url: str) -> str:
    """A libpq URL for dlt (psycopg2); dlt insists on a password, which trust auth ignores."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url).set(drivername="postgresql")
    if parsed.password is None:
        parsed = parsed.set(password="unused")
    return parsed.render_as_string(hide_password=False)


def _drop_dlt_schemas(url: str) -> None:
    import psycopg

    with psycopg.connect(plain_url(url), autocommit=True) as conn:
        for schema in (DLT_SCHEMA, f"{DLT_SCHEMA}_staging"):
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


# --- scale -------------------------------------------------------------------------------

def _scale_run(stack: ExitStack, scale: int, url: str, engine, spec, env_vars: dict[str, str], dagster_home: str,
               dataset_name: str, credentials: dict[str, str]) -> dict:
    """`dataset_name` `scale` times over: its simulator (generation time and peak RSS), its
    floor, and `hg-pipeline sync bench_xN --full` in a new process."""
    from hg_pipeline.simulators.datasets import scaled_name

    started = time.perf_counter()
    simulator = stack.enter_context(_simulator_process(spec.name, dataset_name, scale))
    simulator_start = time.perf_counter() - started
    simulator_peak = _process_peak_mb(simulator.pid)
    simulator.limit_rate(0, 1.0)
    floor = _floor(spec.name, simulator.base_url, credentials, url)
    tenant_id = f"bench_x{scale}"
    _register_tenant(engine, spec, tenant_id, simulator.base_url, env_vars,
                     requests_per_second=BENCH_REQUESTS_PER_SECOND)
    _store_mapping(engine, tenant_id)
    sync = _cli_sync(url, tenant_id, "--full", dagster_home)
    return {"scale": scale, "dataset": scaled_name(dataset_name, scale), "tenant": tenant_id,
            "simulator_start_seconds": simulator_start, "simulator_peak_mb": max(simulator_peak,
                                                                                 _process_peak_mb(simulator.pid)),
            "floor_seconds": floor["floor_seconds"], "floor_records": floor["floor_records"], "sync": sync}


def _process_peak_mb(pid: int) -> float:
    """Another process's peak resident set (VmHWM), 0 where /proc cannot tell."""
    return _status_mb(pid, "VmHWM")


def _status_mb(pid: int, field: str) -> float:
    """A size field of another process's /proc status (VmHWM, VmRSS) in MiB, 0 where it cannot tell."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def _children(pid: int) -> list[int]:
    """The processes `pid` started that still run (Linux's /proc; none where it cannot tell)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(child) for child in f.read().split()]
    except (OSError, ValueError):
        return []


# --- timings from the Dagster run -------------------------------------------------------

def _step_seconds(instance, run_id: str) -> dict[str, float]:
    """step key -> seconds between its STEP_START and its STEP_SUCCESS (the instance's event log)."""
    return {key: ended - started for key, (started, ended) in _step_times(instance, run_id).items()}


def _extract_span(times: dict[str, tuple[float, float]]) -> tuple[float, float]:
    """The start of the first extract step (`*_raw`) and the end of the last one."""
    spans = [span for key, span in times.items() if key.endswith("_raw")]
    return min(start for start, _ in spans), max(end for _, end in spans)


def _step_times(instance, run_id: str) -> dict[str, tuple[float, float]]:
    """step key -> (its STEP_START, its STEP_SUCCESS or STEP_FAILURE) timestamps."""
    from dagster import DagsterEventType

    started: dict[str, float] = {}
    times: dict[str, tuple[float, float]] = {}
    records = instance.get_records_for_run(
        run_id, of_type={DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS,
                         DagsterEventType.STEP_FAILURE}, limit=100_000).records
    for record in records:
        entry = record.event_log_entry
        event = entry.dagster_event
        if event.event_type == DagsterEventType.STEP_START:
            started[event.step_key] = entry.timestamp
        elif event.step_key in started:
            times[event.step_key] = (started[event.step_key], entry.timestamp)
    return times


def _stage_rows(stages: dict[str, dict], steps: dict[str, float]) -> list[dict]:
    """One row per step, in pipeline order: entity, stage, records, seconds, records/s."""
    rows = []
    for entity in STAGED_ENTITIES:
        for stage, key, count_key in (("extract", f"{entity}_raw", "received"),
                                      ("map", f"{entity}_mapped", "records"),
                                      ("load", entity, "rows")):
            if key not in steps:
                continue
            meta = stages.get(key, {})
            records = int(meta.get(count_key, 0) or 0)
            seconds = steps[key]
            row = {"entity": entity, "stage": stage, "step": key, "records": records, "seconds": seconds,
                   "records_per_second": records / seconds if seconds > 0 else 0.0}
            if stage == "extract":
                row["quarantined"] = int(meta.get("quarantined", 0) or 0)
            elif stage == "map":
                row.update({k: int(meta.get(k, 0) or 0) for k in ("mapped", "pending", "ignored")})
            else:
                row.update({k: int(meta.get(k, 0) or 0) for k in ("inserted", "updated", "unchanged", "soft_deleted")})
            rows.append(row)
    return rows


# --- memory -----------------------------------------------------------------------------

def _maxrss_mb() -> float:
    # ru_maxrss: kilobytes on Linux, bytes on macOS.
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value / (1024 * 1024) if sys.platform == "darwin" else value / 1024


def _current_rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)
    except (OSError, ValueError, IndexError):
        return _maxrss_mb()


class _RssSampler:
    """Samples this process's resident set every 50 ms; `peak_mb` is the highest seen."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, _current_rss_mb())
            self._stop.wait(self.interval)

    def __enter__(self) -> "_RssSampler":
        self.peak_mb = _current_rss_mb()
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, _current_rss_mb())


# --- baseline: raw COPY ------------------------------------------------------------------

def _copy_baseline(url: str) -> dict[str, dict]:
    """For raw_records and each loaded table: read the tenant's rows into memory, then time
    COPY FROM STDIN of them into an empty twin (same columns, indexes and constraints but
    foreign keys) in schema bench_baseline, committed. Returns name -> {rows, seconds}."""
    import psycopg

    from hg_pipeline.warehouse.tables import LOADED_TABLES, raw_records

    tables = {"raw_records": raw_records, **LOADED_TABLES}
    plain = url.replace("postgresql+psycopg://", "postgresql://", 1)
    results: dict[str, dict] = {}
    with psycopg.connect(plain) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {BASELINE_SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {BASELINE_SCHEMA}")
        conn.commit()
        try:
            for name, table in tables.items():
                columns = [c.name for c in table.columns]
                listed = ", ".join(columns)
                conn.execute(f"CREATE TABLE {BASELINE_SCHEMA}.{name} (LIKE {db.SCHEMA}.{name} INCLUDING ALL)")
                rows = conn.execute(f"SELECT {listed} FROM {db.SCHEMA}.{name} WHERE tenant_id = %s",
                                    (BENCH_TENANT,)).fetchall()
                conn.commit()
                started = time.perf_counter()
                with conn.cursor() as cursor:
                    with cursor.copy(f"COPY {BASELINE_SCHEMA}.{name} ({listed}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
                conn.commit()
                seconds = time.perf_counter() - started
                results[name] = {"table": f"{db.SCHEMA}.{name}", "rows": len(rows), "seconds": seconds,
                                   "rows_per_second": len(rows) / seconds if seconds > 0 else 0.0}
        finally:
            conn.rollback()
            conn.execute(f"DROP SCHEMA IF EXISTS {BASELINE_SCHEMA} CASCADE")
            conn.commit()
    return results


# --- goals (issue 10) ---------------------------------------------------------------------

def _goals(f: dict) -> list[dict]:
    """One row per figure: key, label, value, unit, ratio to the floor (None without a floor),
    goal text and met (None: no goal, or nothing to judge it by)."""
    floor = f["floor_seconds"]
    rows: list[dict] = []

    def row(key, label, value, *, unit="s", to_floor=True, goal="", met=None):
        ratio = value / floor if to_floor and floor and value is not None else None
        rows.append({"key": key, "label": label, "value": value, "unit": unit, "ratio": ratio,
                     "goal": goal, "met": met})
        return ratio

    def at_most(ratio, limit):
        return None if ratio is None else ratio <= limit

    if floor:
        row("floor", "floor (fetch + COPY of the same pages)", floor)
    full_ratio = (f["total_seconds"] / floor) if floor else None
    row("full", "full sync (in process)", f["total_seconds"], goal=f"<= {FULL_GOAL_RATIO:g}x floor",
        met=at_most(full_ratio, FULL_GOAL_RATIO))
    cli = f["full_cli"]
    cli_ratio = (cli["wall_seconds"] / floor) if floor else None
    row("full_cli", "full sync (`sync --full`, new process)", cli["wall_seconds"],
        goal=f"<= {FULL_GOAL_RATIO:g}x floor", met=at_most(cli_ratio, FULL_GOAL_RATIO))
    second_ratio = (f["second_full_sync_seconds"] / floor) if floor else None
    row("second_full", "second full sync, nothing changed", f["second_full_sync_seconds"],
        goal=f"<= {SECOND_GOAL_RATIO:g}x floor", met=at_most(second_ratio, SECOND_GOAL_RATIO))
    row("reconcile", "reconcile (every record mapped again), nothing changed", f["reconcile_seconds"])
    row("incremental", f"nightly incremental, {INCREMENTAL_SHARE:.0%} changed", f["incremental_seconds"],
        goal=f"<= {INCREMENTAL_GOAL_SECONDS:g} s", met=f["incremental_seconds"] <= INCREMENTAL_GOAL_SECONDS)
    row("remap", "remap (in process)", f["remap_seconds"])
    row("remap_cli", "remap (`sync --remap`, new process)", f["remap_cli"]["wall_seconds"],
        goal=f"<= {REMAP_GOAL_SECONDS:g} s", met=f["remap_cli"]["wall_seconds"] <= REMAP_GOAL_SECONDS)
    row("rss", "peak RSS of `sync --full` (new process)", cli["maxrss_mb"], unit="MiB", to_floor=False,
        goal=f"<= {RSS_GOAL_MB:g} MiB", met=cli["maxrss_mb"] <= RSS_GOAL_MB)
    row("rss_in_process", "peak RSS of the in-process full sync", f["rss_peak_sync_mb"], unit="MiB",
        to_floor=False)
    dlt = f["dlt"]
    if dlt.get("status") == "measured":
        row("dlt_first", "dlt rest_api -> PostgreSQL, first run", dlt["first"]["wall_seconds"])
        row("dlt_merge", "dlt rest_api -> PostgreSQL, merge re-run", dlt["merge"]["wall_seconds"])
        row("full_cli_to_dlt", "`sync --full` / dlt first run", cli["wall_seconds"] / dlt["first"]["wall_seconds"],
            unit="x", to_floor=False, goal="< 1 (clearly faster)",
            met=cli["wall_seconds"] < dlt["first"]["wall_seconds"])
    scaled = f["scale"]
    if scaled:
        sync, n = scaled["sync"], scaled["scale"]
        scale_floor = scaled["floor_seconds"]
        rows.append({"key": "scale_floor", "label": f"floor at --scale {n}", "value": scale_floor, "unit": "s",
                     "ratio": None, "goal": "", "met": None})
        rows.append({"key": "scale", "label": f"`sync --full` at --scale {n} (new process)",
                     "value": sync["wall_seconds"], "unit": "s",
                     "ratio": sync["wall_seconds"] / scale_floor if scale_floor else None, "goal": "", "met": None})
        growth = sync["wall_seconds"] / cli["wall_seconds"]
        row("scale_ratio", f"--scale {n} / --scale 1 `sync --full`", growth, unit="x", to_floor=False,
            goal=f"<= {SCALE_GOAL_RATIO:g}x" if n == 10 else "", met=growth <= SCALE_GOAL_RATIO if n == 10 else None)
        row("scale_rss", f"peak RSS at --scale {n}", sync["maxrss_mb"], unit="MiB", to_floor=False,
            goal=f"<= {SCALE_RSS_GOAL_MB:g} MiB", met=sync["maxrss_mb"] <= SCALE_RSS_GOAL_MB)
    return rows


def _print_goals(f: dict, say) -> None:
    say()
    say(f"{'issue 10':<44} {'value':>10} {'x floor':>8}  {'goal':<22} status")
    for row in f["goals"]:
        digits = 0 if row["unit"] == "MiB" else 2
        value = "-" if row["value"] is None else f"{row['value']:.{digits}f} {row['unit']}".replace(" x", "x")
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.1f}"
        status = {True: "met", False: "MISSED", None: ""}[row["met"]]
        say(f"{row['label']:<44} {value:>10} {ratio:>8}  {row['goal']:<22} {status}".rstrip())
    if not f["floor_seconds"]:
        say(f"(no floor for {f['source']}: it is measured for ConnectWise only)")


# --- printing ----------------------------------------------------------------------------

def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("inf")


def _print_report(f: dict, say) -> None:
    say()
    say(f"{'stage':<8} {'entity':<18} {'records':>9} {'seconds':>8} {'rec/s':>9}  detail")
    for row in f["stages"]:
        if row["stage"] == "extract":
            detail = f"quarantined={row['quarantined']}"
        elif row["stage"] == "map":
            detail = f"mapped={row['mapped']} pending={row['pending']} ignored={row['ignored']}"
        else:
            detail = (f"inserted={row['inserted']} updated={row['updated']} unchanged={row['unchanged']}"
                      f" soft_deleted={row['soft_deleted']} copy={row.get('copy_seconds', 0):.2f}s"
                      f" x{row.get('ratio_to_copy', 0):.1f}")
        say(f"{row['stage']:<8} {row['entity']:<18} {row['records']:>9} {row['seconds']:>8.2f}"
            f" {row['records_per_second']:>9.0f}  {detail}")
    say()
    say(f"full_sync_seconds: {f['total_seconds']:.2f}")
    say(f"second_full_sync_seconds: {f['second_full_sync_seconds']:.2f} (nothing changed in the PSA; maps a delta)")
    say(f"reconcile_seconds: {f['reconcile_seconds']:.2f} (a full sync that maps every record again; nothing"
        " changed)")
    say(f"incremental_seconds: {f['incremental_seconds']:.2f} (nightly after {INCREMENTAL_SHARE:.0%} changed;"
        f" goal <= {f['incremental_goal_seconds']:.0f} s: {'met' if f['incremental_within_goal'] else 'MISSED'})")
    say("incremental_touched: " + " ".join(f"{k}={v}" for k, v in f["incremental_touched"].items()))
    say("incremental_received: " + " ".join(f"{k}={v}" for k, v in f["incremental_received"].items()))
    say(f"incremental_psa_requests: {f['incremental_psa_requests']}")
    say("incremental_steps: " + " ".join(f"{r['step']}={r['seconds']:.2f}" for r in f["incremental_stages"]))
    say(f"steps_seconds: {f['steps_seconds']:.2f} (extract {f['extract_seconds']:.2f},"
        f" map {f['map_seconds']:.2f}, load {f['load_seconds']:.2f}; the rest is Dagster overhead)")
    say(f"records_extracted: {f['records_extracted']}")
    say(f"records_loaded: {f['records_loaded']} (" + " ".join(f"{k}={v}" for k, v in f["loaded"].items()) + ")")
    say("live_rows: " + " ".join(f"{k}={v}" for k, v in f["live_counts"].items()))
    say(f"records_per_second: {f['records_per_second']:.0f} (extracted records / full sync seconds)")
    say(f"psa_requests_full: {f['psa_requests_full']}")
    say(f"rss_before_sync_mb: {f['rss_before_sync_mb']:.0f}")
    say(f"rss_peak_sync_mb: {f['rss_peak_sync_mb']:.0f} (sampled every 50 ms; the pipeline alone)")
    say(f"rss_maxrss_mb: {f['rss_maxrss_mb']:.0f} (getrusage ru_maxrss, whole process so far)")
    say()
    say(f"remap_seconds: {f['remap_seconds']:.2f} (in process; the goal <= {f['remap_goal_seconds']:.0f} s"
        " is judged on remap_cli_seconds, as a user runs it)")
    say("remap_steps: " + " ".join(f"{r['step']}={r['seconds']:.2f}" for r in f["remap_stages"]))
    say(f"remap_psa_requests: {f['remap_psa_requests']}")
    say()
    say(f"rate_limit: {f['rate_limit_rps']:g} requests/s (the PSA answers 429 beyond it; tenant {RATE_TENANT},"
        f" {f['rate_limited_dataset']} dataset, a simulator process of its own)")
    say(f"rate_limited_seconds: {f['rate_limited_seconds']:.2f} (first extract step start to last extract step end;"
        f" whole sync {f['rate_limited_sync_seconds']:.2f})")
    say(f"rate_limited_requests: {f['rate_limited_requests']} ({f['rate_limited_api_requests']} to the API,"
        f" {f['rate_limited_requests'] - f['rate_limited_api_requests']} outside it: sign-in, discovery)")
    say(f"requests_over_rate_seconds: {f['requests_over_rate_seconds']:.2f}")
    say(f"rate_limited_ratio: {f['rate_limited_ratio']:.2f} (goal <= {RATE_GOAL_RATIO}:"
        f" {'met' if f['rate_limited_within_goal'] else 'MISSED'})")
    say(f"rate_limited_429s: {f['rate_limited_429s']}")
    say()
    say(f"{'copy_baseline':<14} {'table':<18} {'rows':>9} {'seconds':>8} {'rows/s':>9}")
    for name, b in f["baseline"].items():
        say(f"{'copy':<14} {b['table']:<18} {b['rows']:>9} {b['seconds']:>8.2f} {b['rows_per_second']:>9.0f}")
    say(f"copy_baseline_seconds: {f['baseline_total_seconds']:.2f}")
    say(f"ratio_to_copy: {f['ratio_to_copy']:.1f} (full sync seconds / COPY baseline seconds)")
    say(f"load_ratio_to_copy: {f['load_ratio_to_copy']:.1f} (load steps / COPY of the loaded tables)")
    _print_user_runs(f, say)
    _print_goals(f, say)


def _print_user_runs(f: dict, say) -> None:
    say()
    for key in ("remap_cli", "full_cli"):
        run = f[key]
        say(f"{key}_seconds: {run['wall_seconds']:.2f} (`{run['command']}`: spawn to exit, imports included;"
            f" the run itself {run['run_seconds'] or 0:.1f} s; peak RSS {run['maxrss_mb']:.0f} MiB)")
    dlt = f["dlt"]
    if dlt.get("status") != "measured":
        say(f"dlt: {dlt['status']}")
    else:
        for run in ("first", "merge"):
            say(f"dlt_{run}_seconds: {dlt[run]['wall_seconds']:.2f} (rest_api source -> schema {DLT_SCHEMA},"
                f" a process of its own; pipeline.run {dlt[run]['run_seconds']:.2f} s, {dlt[run]['rows']} rows)")
    scaled = f["scale"]
    if not scaled:
        say("scale: not run (`hg-pipeline bench --scale 10` adds a full sync of the dataset 10 times over)")
        return
    sync = scaled["sync"]
    say(f"scale_dataset: {scaled['dataset']} ({scaled['floor_records']} records)")
    say(f"scale_simulator_start_seconds: {scaled['simulator_start_seconds']:.2f}"
        f" (generating the dataset; simulator peak RSS {scaled['simulator_peak_mb']:.0f} MiB, its own process)")
    say(f"scale_floor_seconds: {scaled['floor_seconds'] or 0:.2f}")
    say(f"scale_full_sync_seconds: {sync['wall_seconds']:.2f} (`{sync['command']}`; the run itself"
        f" {sync['run_seconds'] or 0:.1f} s)")
    say(f"scale_ratio: {sync['wall_seconds'] / f['full_cli']['wall_seconds']:.1f}"
        f" (to `{f['full_cli']['command']}` on {f['dataset']})")
    say(f"scale_rss_mb: {sync['maxrss_mb']:.0f}")
