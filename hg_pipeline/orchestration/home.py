"""The Dagster home every command of the project shares.

`hg-pipeline` uses $DAGSTER_HOME, else ./.hg/dagster. Dagster's own commands (`dagster dev`,
`dg dev`, `dg launch`, `dagster asset materialize`) read a `.env` file in the folder they
start in, so `python -m hg_pipeline.orchestration.home` (run by scripts/setup.sh) writes
`DAGSTER_HOME=${DAGSTER_HOME:-<project>/.hg/dagster}` there: from the project folder they all
use the same instance as the CLI, with no variable to export (an exported one still wins).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from dagster import DagsterInstance

DEFAULT_DAGSTER_HOME = Path(".hg") / "dagster"
INSTANCE_TEMPLATE = Path(__file__).resolve().parents[2] / "dagster.yaml"
# Dagster's documented dagster-postgres settings, read from the environment by every process
# that loads the instance; the file itself holds no secret.
POSTGRES_STORAGE = {
    "DAGSTER_PG_URL": "storage:\n  postgres:\n    postgres_url:\n      env: DAGSTER_PG_URL\n",
    "DAGSTER_PG_HOST": (
        "storage:\n  postgres:\n    postgres_db:\n"
        + "".join(f"      {key}:\n        env: DAGSTER_PG_{var}\n" for key, var in (
            ("hostname", "HOST"), ("username", "USERNAME"), ("password", "PASSWORD"), ("db_name", "DB"),
            ("port", "PORT")))
        + "      scheme: postgresql+psycopg2\n"
    ),
}


def instance_yaml(environ: Mapping[str, str]) -> str:
    """The project's dagster.yaml, plus Postgres storage when DAGSTER_PG_URL (or DAGSTER_PG_HOST) is set."""
    text = INSTANCE_TEMPLATE.read_text()
    for var, storage in POSTGRES_STORAGE.items():
        if (environ.get(var) or "").strip():
            return f"{text.rstrip()}\n\n# Postgres storage because {var} is set (added by hg-pipeline)\n{storage}"
    return text


def prepare_home(home: Path, environ: Mapping[str, str]) -> Path:
    """Create `home` with this release's dagster.yaml (refreshed each time, so new settings reach old homes)."""
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(instance_yaml(environ))
    return home


def dagster_instance() -> DagsterInstance:
    """The instance of $DAGSTER_HOME, or of ./.hg/dagster so that `dagster dev` shows CLI runs."""
    given = os.environ.get("DAGSTER_HOME")
    if not given:
        os.environ["DAGSTER_HOME"] = str(prepare_home(DEFAULT_DAGSTER_HOME, os.environ))
    elif not any((Path(given) / name).exists() for name in ("dagster.yaml", "dagster.yml")):
        prepare_home(Path(given), os.environ)  # a bare home gets the project's settings (and no telemetry banner)
    return DagsterInstance.get()


def write_dotenv(project: Path, environ: Mapping[str, str]) -> Path:
    """Prepare `project`/.hg/dagster and point `project`/.env's DAGSTER_HOME at it (other lines kept)."""
    home = prepare_home(project / DEFAULT_DAGSTER_HOME, environ)
    dotenv = project / ".env"
    lines = dotenv.read_text().splitlines() if dotenv.exists() else []
    lines = [line for line in lines if not line.strip().startswith("DAGSTER_HOME=")]
    # A DAGSTER_HOME exported in the shell still wins (python-dotenv expands the default form).
    dotenv.write_text("\n".join([*lines, f"DAGSTER_HOME=${{DAGSTER_HOME:-{home}}}"]) + "\n")
    return home


if __name__ == "__main__":
    print(f"DAGSTER_HOME={write_dotenv(Path(sys.argv[1] if len(sys.argv) > 1 else '.'), os.environ)} (in .env)")
