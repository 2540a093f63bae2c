"""`hg-pipeline demo`: a simulated MSP, synced end to end into the embedded database."""

from __future__ import annotations

import os
import socket

from hg_pipeline.connectors.registry import SourceSpec, source
from hg_pipeline.simulators.datasets import generate
from hg_pipeline.warehouse import db
from hg_pipeline.warehouse.load import live_counts
from hg_pipeline.warehouse.mappings import current_mapping, store_mapping
from hg_pipeline.warehouse.schema import upgrade
from hg_pipeline.warehouse.tenants import Tenant, TenantError, add_tenant, get_tenant

DEMO_TENANT = "demo-msp"
# The demo's simulator allows this many requests per second, and its tenant declares it (minus
# 10%), so that HaloPSA's and Autotask's default rates (minutes for a sync) do not slow the demo.
DEMO_RATE_LIMIT = 50
_ENV_PREFIX = {"connectwise": "HG_DEMO_CW_"}


def demo_env(spec: SourceSpec) -> dict[str, str]:
    """The variables the demo tenant's credentials refer to, as a real tenant's do."""
    prefix = _ENV_PREFIX.get(spec.name, f"HG_DEMO_{spec.name.upper()}_")
    return {key: f"{prefix}{key.upper()}" for key in spec.simulator_module().DEMO_CREDENTIALS}


def run_demo(database_url: str, *, port: int = 8101, log_level: str = "CRITICAL",
             source_name: str = "connectwise") -> int:
    from hg_pipeline.orchestration.run import run_sync

    spec = source(source_name)
    if spec.pushed:
        return _run_import_demo(database_url, spec, log_level)
    demo_credentials = spec.simulator_module().DEMO_CREDENTIALS
    env = demo_env(spec)
    engine = db.connect(database_url)
    upgrade(engine)
    for key, var in env.items():
        os.environ.setdefault(var, demo_credentials[key])
    port = port if _port_free(port) else 0
    with spec.simulator_class()(generate("small", seed=1), port=port,
                                rate_limit=(DEMO_RATE_LIMIT, 1.0)) as simulator:
        print(f"{spec.title} simulator on {simulator.base_url} (small dataset, seed 1)")
        _ensure_tenant(engine, simulator.base_url, spec, env)
        _ensure_mapping(engine, spec)
        outcome = run_sync(database_url, DEMO_TENANT, "full", log_level=log_level)
    if not _report(database_url, engine, outcome):
        return 1
    print(
        "\nSee the runs, the asset graph and every materialization in the Dagster UI (from this folder;\n"
        "its .env points Dagster at the same home, " + os.environ["DAGSTER_HOME"] + "):\n"
        "  .venv/bin/dagster dev -w workspace.yaml     # then open http://127.0.0.1:3000\n"
        "Nothing starts on its own there until the nightly schedule (02:00 UTC): the demo's sync already\n"
        "brought the data and applied the mapping. To launch syncs from the UI (or let the schedule run\n"
        "them), keep a simulator running in another terminal:\n"
        f"  .venv/bin/hg-pipeline simulate {spec.name} --port {port or 8101}\n"
        "and export the tenant's credentials where `dagster dev` starts (its runs read them):\n"
        + "".join(f"  export {var}={demo_credentials[key]}\n" for key, var in env.items())
        + "Then try: .venv/bin/hg-pipeline mapping pending demo-msp  (and: mapping show, mapping details)"
    )
    return 0


def _report(database_url: str, engine, outcome) -> bool:
    from hg_pipeline.cli import format_outcome

    print(format_outcome(outcome))
    if not outcome.success:
        print(f"demo sync failed at {outcome.failed_step}: {outcome.reason}")
        return False
    print("\nrows in the warehouse " + db.safe_url(database_url) + ":")
    for entity, count in live_counts(engine, DEMO_TENANT).items():
        print(f"  {entity:<10} {count:>6}")
    return True


def _run_import_demo(database_url: str, spec: SourceSpec, log_level: str) -> int:
    """An MSP without a PSA: the example files imported as one batch, then the full sync."""
    from hg_pipeline.imports.batches import stage_batch
    from hg_pipeline.imports.examples import EXAMPLES_DIR, example_files
    from hg_pipeline.imports.files import Checked, identify
    from hg_pipeline.orchestration.run import run_sync

    engine = db.connect(database_url)
    upgrade(engine)
    try:
        tenant = get_tenant(engine, DEMO_TENANT)
        if tenant.source != spec.name:
            print(f"tenant {DEMO_TENANT} of this database reads {tenant.source}; run the import demo on another "
                  "database (--database-url) or remove ./.hg")
            return 1
    except TenantError:
        add_tenant(engine, Tenant(tenant_id=DEMO_TENANT, name="Demo MSP (import files)", source=spec.name,
                                  base_url=None, credentials={}, notify_email="ops@demo-msp.example"))
        print(f"registered tenant {DEMO_TENANT} (source: import)")
    _ensure_mapping(engine, spec)
    checked = Checked([identify(path) for path in example_files()])
    result = stage_batch(engine, DEMO_TENANT, checked.sources(), partial=False, refusal=checked.refusal)
    print(f"imported {', '.join(f.name for f in checked.files)} from {EXAMPLES_DIR}: {result.summary()}")
    outcome = run_sync(database_url, DEMO_TENANT, "full", log_level=log_level)
    if not _report(database_url, engine, outcome):
        return 1
    print(
        "\nSee the runs in the Dagster UI: .venv/bin/dagster dev -w workspace.yaml  (then http://127.0.0.1:3000)\n"
        f"Import again after editing a file: .venv/bin/hg-pipeline import {DEMO_TENANT} FILE... --sync\n"
        "Or push records over HTTP: README, \"Import API\"."
    )
    return 0


def _ensure_mapping(engine, spec: SourceSpec) -> None:
    """The source's default mapping as the demo tenant's first version, unless it has one."""
    if current_mapping(engine, DEMO_TENANT) is None:
        store_mapping(engine, DEMO_TENANT, spec.default_document())
        print(f"stored the default mapping as version 1 for tenant {DEMO_TENANT}")


def _ensure_tenant(engine, base_url: str, spec: SourceSpec, env: dict[str, str]) -> None:
    try:
        get_tenant(engine, DEMO_TENANT)
        from sqlalchemy import update

        from hg_pipeline.warehouse.tables import tenants

        with engine.begin() as conn:  # the simulator may have a new port since the last demo
            conn.execute(update(tenants).where(tenants.c.tenant_id == DEMO_TENANT).values(
                base_url=base_url, requests_per_second=DEMO_RATE_LIMIT * 0.9))
    except TenantError:
        add_tenant(engine, Tenant(
            tenant_id=DEMO_TENANT,
            name=f"Demo MSP (simulated {spec.title})",
            source=spec.name,
            base_url=base_url,
            credentials={key: f"env:{var}" for key, var in env.items()},
            notify_email="ops@demo-msp.example",
            requests_per_second=DEMO_RATE_LIMIT * 0.9,
        ))
        print(f"registered tenant {DEMO_TENANT}")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False
