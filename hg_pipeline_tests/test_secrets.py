"""No form of a credential leaves the process: a PSA of our own on loopback echoes every
header and path it receives in its 401 body, and the credential values, their URL-encoded forms
and the base64 Basic header are looked for in the command's output (at DEBUG too), sync_runs,
every file of the Dagster home (event log, compute logs), every event of the run and the
failure e-mail. Credential arguments never echo what was typed."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, quote_plus, unquote

import pytest
from dagster import DagsterInstance, build_sensor_context
from sqlalchemy import select, update

from hg_pipeline import secrets
from hg_pipeline.cli import main
from hg_pipeline.orchestration.home import prepare_home
from hg_pipeline.orchestration.notify import sync_failed_sensor
from hg_pipeline.orchestration.resources import WarehouseResource
from hg_pipeline.warehouse.tables import sync_runs, tenants
from hg_pipeline.warehouse.tenants import Tenant, add_tenant
from hg_pipeline_tests.smtp import smtp_server  # noqa: F401  (fixture)

BIN = Path(sys.executable).parent
CREDENTIALS = {  # characters that URL-encoding, JSON and base64 each change
    "company_id": "Acme Co/7f3e",
    "public_key": "pubK3y+Zq9w",
    "private_key": "pr1v/Key=ULTRA+secret",
    "client_id": "c1ient-9a8b-77e2",
}
BASIC = base64.b64encode(
    f"{CREDENTIALS['company_id']}+{CREDENTIALS['public_key']}:{CREDENTIALS['private_key']}".encode()).decode()


def secret_forms() -> set[str]:
    forms = {BASIC}
    for value in CREDENTIALS.values():
        forms |= {value, quote(value, safe=""), quote(value), quote_plus(value)}
    return forms


def leaked(text: str) -> set[str]:
    return {form for form in secret_forms() if form in text}


class EchoingPsa(BaseHTTPRequestHandler):
    """Answers everything with a 401 whose body repeats the request's headers and path."""

    seen: list[dict] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        headers = dict(self.headers.items())
        EchoingPsa.seen.append(headers)
        token = headers.get("Authorization", "").partition(" ")[2]
        echo = (f"denied: Authorization={headers.get('Authorization')} token={token} "
                f"clientId={headers.get('clientId')} path={self.path} decoded={unquote(self.path)}")
        body = json.dumps({"code": "Unauthorized", "message": echo}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def echoing_psa():
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoingPsa)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    EchoingPsa.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = prepare_home(tmp_path / "dagster", os.environ)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.fixture
def tenant(warehouse, monkeypatch):
    """acme, its credentials in environment variables (the command's process inherits them)."""

    def make(base_url: str) -> str:
        refs = {}
        for key, value in CREDENTIALS.items():
            monkeypatch.setenv(f"HG_SECRET_TEST_{key.upper()}", value)
            refs[key] = f"env:HG_SECRET_TEST_{key.upper()}"
        add_tenant(warehouse, Tenant("acme", "Acme IT", "connectwise", base_url, refs, "ops@acme.example"))
        return "acme"

    return make


def sync_rows(engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(select(sync_runs.c.dagster_run_id, sync_runs.c.status,
                                                         sync_runs.c.error, sync_runs.c.summary)).mappings()]


def dagster_home_leaks(home: Path) -> dict[str, set[str]]:
    """Every file under the Dagster home (run and event storage, compute logs) with a secret form."""
    found = {}
    for path in home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            forms = {form for form in secret_forms() if form.encode() in data}
            if forms:
                found[str(path.relative_to(home))] = forms
    return found


def event_log_leaks(home: Path, run_id: str) -> set[str]:
    with DagsterInstance.from_config(str(home)) as instance:
        return set().union(*(leaked(repr(entry)) for entry in instance.all_logs(run_id)))


def test_a_psa_echoing_the_credentials_leaks_them_nowhere(pg_url, warehouse, tenant, echoing_psa, home,
                                                         smtp_server, monkeypatch):  # noqa: F811
    tenant_id = tenant(echoing_psa)
    monkeypatch.setenv("HG_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("HG_SMTP_PORT", str(smtp_server.port))
    daemon = {"warehouse": WarehouseResource(database_url=pg_url)}
    with DagsterInstance.from_config(str(home)) as instance:  # the sensor watches from before the run
        with build_sensor_context(instance=instance, resources=daemon, sensor_name=sync_failed_sensor.name) as ctx:
            cursor = sync_failed_sensor.evaluate_tick(ctx).cursor

    command = subprocess.run(
        [str(BIN / "hg-pipeline"), "sync", tenant_id, "--full", "--database-url", pg_url], capture_output=True,
        text=True, timeout=300, env=dict(os.environ, HG_LOG_LEVEL="DEBUG", HG_PSA_MAX_RETRIES="0"))

    assert command.returncode == 2
    assert EchoingPsa.seen and EchoingPsa.seen[-1]["Authorization"] == f"Basic {BASIC}"  # it was sent the lot
    last = command.stderr.splitlines()[-1]
    assert last.startswith("hg-pipeline: tenant acme: extract ") and "HTTP 401" in last
    assert "Authorization=Basic *** token=*** clientId=*** path=" in last  # echoed, then scrubbed
    assert "urllib3" in command.stderr and "RUN_FAILURE" in command.stderr  # DEBUG showed the libraries
    assert leaked(command.stdout + command.stderr) == set()

    [row] = sync_rows(warehouse)
    assert row["status"] == "failure" and "***" in row["error"]
    assert leaked(row["error"] + row["summary"]) == set()
    assert event_log_leaks(home, row["dagster_run_id"]) == set()
    assert dagster_home_leaks(home) == {}

    with warehouse.begin() as conn:  # the sensor writes the e-mail from the run's events
        conn.execute(update(sync_runs).values(status="running"))
    with DagsterInstance.from_config(str(home)) as instance:
        with build_sensor_context(instance=instance, resources=daemon, cursor=cursor,
                                  sensor_name=sync_failed_sensor.name) as ctx:
            sync_failed_sensor.evaluate_tick(ctx)
    [mail] = smtp_server.handler.messages
    assert mail["Subject"] == "[HighGround] Acme IT (acme): full sync failed"
    assert "HTTP 401" in mail.get_content() and leaked(mail.as_string()) == set()
    [row] = sync_rows(warehouse)
    assert row["status"] == "failure" and leaked(row["error"]) == set()


@pytest.mark.parametrize("base_url", ["http://[fe80::1", "http://127.0.0.1:99999", "http:///x",
                                      "http://exa mple.com/api"])
def test_a_malformed_base_url_fails_the_sync_with_one_scrubbed_line(pg_url, warehouse, tenant, home, capsys,
                                                                   base_url):
    tenant_id = tenant("http://127.0.0.1:9")
    with warehouse.begin() as conn:  # past `tenant add`'s checks, as an old or hand-edited row would be
        conn.execute(update(tenants).where(tenants.c.tenant_id == tenant_id).values(base_url=base_url))
    code = main(["sync", tenant_id, "--full", "--database-url", pg_url])
    out, err = capsys.readouterr()
    assert code == 2
    [line] = err.splitlines()
    assert line.startswith("hg-pipeline: tenant acme: extract ") and "Traceback" not in err
    assert leaked(out + err) == set()
    [row] = sync_rows(warehouse)
    assert row["status"] == "failure" and leaked(row["error"]) == set()
    assert event_log_leaks(home, row["dagster_run_id"]) == set()


@pytest.mark.parametrize("argument, named", [
    ("hunter2-typed-value", "credential argument 1: expected KEY=env:VAR"),
    ("private_key:hunter2-typed-value", "credential argument 1: expected KEY=env:VAR"),
    ("private_key=hunter2-typed-value", "credential private_key: expected a reference env:VAR"),
    ("private_key=env:hunter2-typed-value", "credential private_key: the name after env: must be"),
    ("hunter2typedvalue=env:X", "a credential key is not used by connectwise"),
])
def test_credential_arguments_never_echo_what_was_typed(pg_url, warehouse, capsys, argument, named):
    code = main(["tenant", "add", "acme", "--source", "connectwise", "--base-url", "http://127.0.0.1:9",
                 "--credential", argument, "--database-url", pg_url])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"hg-pipeline: {named}") and err.count("\n") == 1
    assert "hunter2" not in err


# --------------------------------------------------------------------------- the scrubber itself


def test_every_form_of_a_registered_credential_is_scrubbed():
    secrets.register_basic("Scrub Co/1+pubScrub2", "privScrub/3=x")
    secrets.register_headers({"clientId": "cidScrub-4", "Accept": "application/json",
                              "Authorization": "Bearer tokScrub5.abc"})
    pair = base64.b64encode(b"Scrub Co/1+pubScrub2:privScrub/3=x").decode()
    text = (f"basic {pair} alone; user Scrub%20Co%2F1%2BpubScrub2 and Scrub+Co%2F1%2BpubScrub2; "
            'json "privScrub\\/3=x"; header cidScrub-4; bearer tokScrub5.abc; accept application/json')
    assert secrets.scrub(text) == ("basic *** alone; user *** and ***; json \"***\"; header ***; bearer ***; "
                                   "accept application/json")


def test_unregistered_tokens_and_url_credentials_are_scrubbed_too():
    text = ("Authorization: Basic dXNlcjpwYXNzd29yZA== and Bearer eyJhbGciOi.x9 at "
            "postgresql+psycopg://me:pa55@db/hg; basic information stays")
    assert secrets.scrub(text) == ("Authorization: Basic *** and Bearer *** at postgresql+psycopg://***@db/hg; "
                                   "basic information stays")


def test_log_records_of_any_logger_are_scrubbed_at_any_level():
    secrets.register("logSecret-9z")
    secrets.install_log_scrubbing()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    library = logging.getLogger("urllib3.connectionpool.scrub-test")
    library.addHandler(handler)
    library.setLevel(logging.DEBUG)
    try:
        library.debug('%s "GET /login/companyinfo/%s HTTP/1.1" 401', "http://127.0.0.1", "logSecret-9z")
        try:
            raise ValueError("Failed to parse: http://x/login/companyinfo/logSecret-9z")
        except ValueError:
            library.exception("request failed")
    finally:
        library.removeHandler(handler)
    written = stream.getvalue()
    assert '"GET /login/companyinfo/*** HTTP/1.1" 401' in written
    assert "Failed to parse: http://x/login/companyinfo/***" in written and "logSecret" not in written
