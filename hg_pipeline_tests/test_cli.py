"""The hg-pipeline command: one-line errors with exit 2, no secrets, nothing lost."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hg_pipeline.cli import main
from hg_pipeline.simulators.connectwise import DEMO_CREDENTIALS, ConnectWiseSimulator
from hg_pipeline.simulators.datasets import generate
from hg_pipeline.warehouse.load import live_counts
from hg_pipeline.warehouse.mappings import store_mapping
from hg_pipeline_tests.orchestration.scenario import TEST_MAPPING

CREDENTIAL_ARGS = [arg for key in DEMO_CREDENTIALS for arg in ("--credential", f"{key}=env:CLI_CW_{key.upper()}")]


@pytest.fixture
def cli(pg_url, warehouse, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    (tmp_path / "dagster").mkdir()
    for key, value in DEMO_CREDENTIALS.items():
        monkeypatch.setenv(f"CLI_CW_{key.upper()}", value)

    def run(*args: str) -> tuple[int, str, str]:
        code = main([*args, "--database-url", pg_url])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_tenant_add_and_list_show_no_secret(cli):
    code, out, _ = cli("tenant", "add", "acme", "--source", "connectwise", "--base-url", "http://127.0.0.1:9",
                       *CREDENTIAL_ARGS, "--name", "Acme IT")
    assert code == 0 and "acme" in out
    code, out, _ = cli("tenant", "list")
    assert code == 0 and out.startswith("acme\tAcme IT\tconnectwise")
    assert DEMO_CREDENTIALS["private_key"] not in out


def test_a_secret_value_instead_of_a_reference_is_refused(cli):
    code, _, err = cli("tenant", "add", "acme", "--source", "connectwise", "--base-url", "http://127.0.0.1:9",
                       "--credential", "private_key=hunter2")
    assert code == 2
    assert err.count("\n") == 1 and "private_key" in err and "hunter2" not in err


def test_unknown_tenant_exits_2_with_one_line(cli):
    code, _, err = cli("sync", "nobody", "--full")
    assert code == 2 and err == "hg-pipeline: unknown tenant 'nobody' (see `hg-pipeline tenant list`)\n"


def test_bad_database_url_exits_2_without_password(capsys):
    code = main(["tenant", "list", "--database-url", "postgresql+psycopg://me:pa55word@127.0.0.1:1/nowhere"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "cannot connect" in err and "pa55word" not in err
    assert main(["tenant", "list", "--database-url", "not a url"]) == 2
    assert "bad database URL" in capsys.readouterr().err


def test_unreachable_psa_exits_2_and_keeps_rows(cli, warehouse, monkeypatch):
    with ConnectWiseSimulator(generate("small", seed=1)) as sim:
        assert cli("tenant", "add", "acme", "--source", "connectwise", "--base-url", sim.base_url, *CREDENTIAL_ARGS)[0] == 0
        store_mapping(warehouse, "acme", TEST_MAPPING)
        code, out, _ = cli("sync", "acme", "--full")
        assert code == 0 and "full sync of acme: success" in out
    loaded = live_counts(warehouse, "acme")
    monkeypatch.setenv("HG_PSA_MAX_RETRIES", "1")
    code, _, err = cli("sync", "acme", "--full")
    assert code == 2 and err.count("\n") == 1
    assert "PSA unreachable" in err and "acme" in err
    assert live_counts(warehouse, "acme") == loaded


def test_a_sync_is_quiet_unless_verbose(cli, warehouse, tmp_path, pg_url):
    """A bare DAGSTER_HOME gets the project's settings: no telemetry banner, no library INFO lines;
    --verbose shows Dagster's and the libraries' logs."""
    with ConnectWiseSimulator(generate("small", seed=1)) as sim:
        assert cli("tenant", "add", "acme", "--source", "connectwise", "--base-url", sim.base_url, *CREDENTIAL_ARGS)[0] == 0
        store_mapping(warehouse, "acme", TEST_MAPPING)
        code, out, err = cli("sync", "acme", "--full")
        assert code == 0 and err == ""
        assert out.startswith("full sync of acme: success") and "Welcome to Dagster" not in out + err
        assert "INFO" not in out and "great_expectations" not in out
        assert (tmp_path / "dagster" / "dagster.yaml").exists()
    verbose = subprocess.run([str(Path(sys.executable).parent / "hg-pipeline"), "sync", "acme", "--remap", "--verbose",
                              "--database-url", pg_url], capture_output=True, text=True, timeout=300)
    assert verbose.returncode == 0 and "RUN_SUCCESS" in verbose.stderr and "great_expectations" in verbose.stderr


def test_a_warehouse_behind_the_package_is_named_with_its_revision(tmp_path, capsys):
    """After a package upgrade, commands say which revision the warehouse lacks instead of
    failing later on a missing table."""
    from hg_pipeline.warehouse import db
    from hg_pipeline.warehouse.schema import revisions, upgrade

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = db.connect(url)
    upgrade(engine, "0006")
    current, head = revisions(engine)
    assert current == "0006" and head != "0006"
    assert main(["tenant", "list", "--database-url", url]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"hg-pipeline: the warehouse at {url} is at schema revision 0006, this version of "
                           f"hg_pipeline needs {head}: run `hg-pipeline db upgrade`")
    assert main(["db", "upgrade", "--database-url", url]) == 0
    assert main(["tenant", "list", "--database-url", url]) == 0


def test_the_console_script_ends_without_teardown_yet_loses_no_output(cli, pg_url):
    """`hg-pipeline` leaves through os._exit once its work is done: everything it printed to a
    file (block-buffered, under one buffer's size) is there, and the exit status is the command's."""
    for n in range(40):
        assert cli("tenant", "add", f"t{n:02d}", "--source", "connectwise", "--base-url", "http://127.0.0.1:9",
                   *CREDENTIAL_ARGS)[0] == 0
    script = str(Path(sys.executable).parent / "hg-pipeline")
    buffered = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}
    listed = subprocess.run([script, "tenant", "list", "--database-url", pg_url], capture_output=True, text=True,
                            timeout=120, env=buffered)
    assert listed.returncode == 0 and listed.stderr == ""
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == [f"t{n:02d}" for n in range(40)]
    unknown = subprocess.run([script, "sync", "nobody", "--remap", "--database-url", pg_url], capture_output=True,
                             text=True, timeout=120)
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert unknown.stderr == "hg-pipeline: unknown tenant 'nobody' (see `hg-pipeline tenant list`)\n"


@pytest.mark.parametrize("buffered", [False, True])
def test_a_reader_that_goes_away_ends_the_command_quietly(cli, pg_url, buffered):
    """`hg-pipeline ... | head`: when stdout's reader is gone the command stops with the shell's
    SIGPIPE status (141) and no error line, whether its output was still buffered or not."""
    assert cli("tenant", "add", "acme", "--source", "connectwise", "--base-url", "http://127.0.0.1:9",
               *CREDENTIAL_ARGS)[0] == 0
    env = dict(os.environ)
    if buffered:
        env.pop("PYTHONUNBUFFERED", None)
    else:
        env["PYTHONUNBUFFERED"] = "1"
    process = subprocess.Popen([str(Path(sys.executable).parent / "hg-pipeline"), "tenant", "list",
                                "--database-url", pg_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    process.stdout.close()  # long before the command prints: it starts Python and imports first
    _, err = process.communicate(timeout=120)
    assert process.returncode == 141 and err == b""
