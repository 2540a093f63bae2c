"""`hg-pipeline demo`: a simulated MSP, synced end to end into the embedded database."""

from __future__ import annotations

import os
import socket

from hg_pipeline.mapping.document import default_document
from hg_pipeline.simulators.connectwise import DEMO_CREDENTIALS, ConnectWiseSimulator
from hg_pipeline.simulators.datasets import generate
from hg_pipeline.warehouse import db
from hg_pipeline.warehouse.load import live_counts
from hg_pipeline.warehouse.mappings import current_mapping, store_mapping
from hg_pipeline.warehouse.schema import upgrade
from hg_pipeline.warehouse.tenants import Tenant, TenantError, add_tenant, get_tenant

DEMO_TENANT = "demo-msp"
# The demo tenant's credentials are references to these variables, as a real tenant's are.
DEMO_ENV = {key: f"HG_DEMO_CW_{key.upper()}" for key in DEMO_CREDENTIALS}


def run_demo(database_url: str, *, port: int = 8101, log_level: str = "CRITICAL") -> int:
    from hg_pipeline.cli import format_outcome
    from hg_pipeline.orchestration.run import run_sync

    engine = db.connect(database_url)
    upgrade(engine)
    for key, var in DEMO_ENV.items():
        os.environ.setdefault(var, DEMO_CREDENTIALS[key])
    port = port if _port_free(port) else 0
    with ConnectWiseSimulator(generate("small", seed=1), port=port) as simulator:
        print(f"ConnectWise simulator on {simulator.base_url} (small dataset, seed 1)")
        _ensure_tenant(engine, simulator.base_url)
        if current_mapping(engine, DEMO_TENANT) is None:
            store_mapping(engine, DEMO_TENANT, default_document())
            print(f"stored the default mapping as version 1 for tenant {DEMO_TENANT}")
        outcome = run_sync(database_url, DEMO_TENANT, "full", log_level=log_level)
    print(format_outcome(outcome))
    if not outcome.success:
        print(f"demo sync failed at {outcome.failed_step}: {outcome.reason}")
        return 1
    print("\nrows in the warehouse " + db.safe_url(database_url) + ":")
    for entity, count in live_counts(engine, DEMO_TENANT).items():
        print(f"  {entity:<10} {count:>6}")
    print(
        "\nSee the runs, the asset graph and every materialization in the Dagster UI (from this folder;\n"
        "its .env points Dagster at the same home, " + os.environ["DAGSTER_HOME"] + "):\n"
        "  .venv/bin/dagster dev -w workspace.yaml     # then open http://127.0.0.1:3000\n"
        "Nothing starts on its own there: the demo's sync already brought the data and applied the mapping.\n"
        "To launch syncs from the UI, keep a simulator running in another terminal:\n"
        f"  .venv/bin/hg-pipeline simulate connectwise --port {port or 8101}\n"
        + "".join(f"  export {var}={DEMO_CREDENTIALS[key]}\n" for key, var in DEMO_ENV.items())
        + "Then try: .venv/bin/hg-pipeline mapping pending demo-msp  (and: mapping show, mapping details)"
    )
    return 0


def _ensure_tenant(engine, base_url: str) -> None:
    try:
        get_tenant(engine, DEMO_TENANT)
        from sqlalchemy import update

        from hg_pipeline.warehouse.tables import tenants

        with engine.begin() as conn:  # the simulator may have a new port since the last demo
            conn.execute(update(tenants).where(tenants.c.tenant_id == DEMO_TENANT).values(base_url=base_url))
    except TenantError:
        add_tenant(engine, Tenant(
            tenant_id=DEMO_TENANT,
            name="Demo MSP (simulated ConnectWise)",
            source="connectwise",
            base_url=base_url,
            credentials={key: f"env:{var}" for key, var in DEMO_ENV.items()},
            notify_email="ops@demo-msp.example",
        ))
        print(f"registered tenant {DEMO_TENANT}")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False
