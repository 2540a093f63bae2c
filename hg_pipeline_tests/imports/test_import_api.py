"""The import API against the real server (uvicorn on loopback) and the test warehouse: tokens,
tenant isolation, validation, idempotency, body limits, commits."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from hg_pipeline.imports import api as api_module
from hg_pipeline.imports import formats, tokens
from hg_pipeline.warehouse.tables import import_batches, import_records, import_tokens, raw_records
from hg_pipeline.warehouse.tenants import Tenant, TenantError, add_tenant

COMPANIES = [{"id": "C1", "name": "Globex", "type": "Customer"}, {"id": 2, "name": "Initech", "type": "Vendor"}]


def landed(warehouse, batch_id: int | None = None) -> dict[str, str]:
    """psa_id -> payload of the records waiting in import_records (of one batch, or all)."""
    query = select(import_records.c.psa_id, import_records.c.payload)
    if batch_id is not None:
        query = query.where(import_records.c.batch_id == batch_id)
    with warehouse.connect() as conn:
        return dict(conn.execute(query).all())


def batch_count(warehouse) -> int:
    with warehouse.connect() as conn:
        return conn.scalar(select(func.count()).select_from(import_batches))


# --------------------------------------------------------------------------- tokens


def test_tokens_are_stored_hashed_listed_without_secret_and_revocable(warehouse, import_tenant):
    tenant, token = import_tenant("acme")
    assert token.startswith("hgi_")
    token_id, secret = token[4:].split("_", 1)
    with warehouse.connect() as conn:
        stored = conn.execute(select(import_tokens)).mappings().one()
    assert stored["token_id"] == token_id and stored["tenant_id"] == tenant
    assert stored["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest() and secret not in json.dumps(
        {k: str(v) for k, v in stored.items()})
    assert tokens.tenant_of(warehouse, token) == tenant
    assert tokens.tenant_of(warehouse, token[:-1] + ("A" if token[-1] != "A" else "B")) is None  # wrong secret
    assert tokens.tenant_of(warehouse, "hgi_nothex_" + secret) is None and tokens.tenant_of(warehouse, "") is None

    listed = tokens.tokens(warehouse, tenant)
    assert [(t["token_id"], t["revoked_at"]) for t in listed] == [(token_id, None)] and "secret_hash" not in listed[0]
    with pytest.raises(tokens.TokenError, match=f"tenant acme has no import API token 'feedfeedfeed'"):
        tokens.revoke(warehouse, tenant, "feedfeedfeed")
    tokens.revoke(warehouse, tenant, token_id)
    assert tokens.tenant_of(warehouse, token) is None
    assert tokens.tokens(warehouse, tenant)[0]["revoked_at"] is not None


def test_only_import_tenants_get_tokens_and_a_token_revokes_only_in_its_tenant(warehouse, import_tenant):
    add_tenant(warehouse, Tenant("psa", "Psa", "connectwise", "https://na.myconnectwise.net",
                                 {"company_id": "env:A", "public_key": "env:B", "private_key": "env:C",
                                  "client_id": "env:D"}))
    with pytest.raises(TenantError, match="tenant psa reads connectwise"):
        tokens.issue(warehouse, "psa")
    with pytest.raises(TenantError, match="unknown tenant 'nobody'"):
        tokens.issue(warehouse, "nobody")
    _, token_a = import_tenant("acme")
    import_tenant("globex")
    with pytest.raises(tokens.TokenError):
        tokens.revoke(warehouse, "globex", token_a[4:16])  # acme's token id, asked as globex
    assert tokens.tenant_of(warehouse, token_a) == "acme"


# --------------------------------------------------------------------------- authentication


def test_missing_malformed_and_revoked_tokens_are_refused(warehouse, api, client, import_tenant):
    tenant, token = import_tenant("acme")
    good = client(token)
    batch_id = good.open_batch()
    token_id = token[4:16]

    def refused(response):
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
        assert list(response.json()) == ["detail"] and "\n" not in response.json()["detail"]
        assert token[17:] not in response.text

    refused(client(None).post("/v1/batches", {}))
    refused(client(None).get(f"/v1/batches/{batch_id}"))
    refused(client(None).get("/v1/schemas/companies"))
    basic = client(None)
    basic.session.headers["Authorization"] = f"Basic {token}"
    refused(basic.post(f"/v1/batches/{batch_id}/companies", COMPANIES))
    refused(client("not-a-token").post(f"/v1/batches/{batch_id}/companies", COMPANIES))
    refused(client(token[:-2] + "xx").post(f"/v1/batches/{batch_id}/companies", COMPANIES))
    assert landed(warehouse) == {}

    assert good.post(f"/v1/batches/{batch_id}/companies", COMPANIES[:1]).status_code == 200
    tokens.revoke(warehouse, tenant, token_id)
    refused(good.post(f"/v1/batches/{batch_id}/companies", COMPANIES[1:]))
    refused(good.post(f"/v1/batches/{batch_id}/commit"))
    assert sorted(landed(warehouse)) == ["C1"]
    fresh = client(tokens.issue(warehouse, tenant))  # a new token works at once
    assert fresh.get(f"/v1/batches/{batch_id}").json()["landed"] == {"companies": 1}


# --------------------------------------------------------------------------- tenants


def test_two_tenants_with_two_tokens_never_see_each_others_batches(warehouse, api, client, import_tenant):
    _, token_a = import_tenant("acme")
    _, token_b = import_tenant("globex")
    acme, globex = client(token_a), client(token_b)
    batch_a, batch_b = acme.open_batch(), globex.open_batch(partial=True)
    assert batch_a != batch_b
    assert acme.post(f"/v1/batches/{batch_a}/companies", COMPANIES).json() == {"accepted": 2}
    assert globex.post(f"/v1/batches/{batch_b}/companies", [{"id": "G1", "name": "Hooli"}]).json() == {"accepted": 1}

    # globex's token on acme's batch: as if it did not exist, and nothing written or committed
    for response in (globex.post(f"/v1/batches/{batch_a}/companies", [{"id": "X", "name": "Intruder"}]),
                     globex.post(f"/v1/batches/{batch_a}/commit"),
                     globex.get(f"/v1/batches/{batch_a}")):
        assert response.status_code == 404, response.text
        assert response.json() == {"detail": f"no import batch {batch_a}"}
    assert sorted(landed(warehouse, batch_a)) == ["2", "C1"]
    assert sorted(landed(warehouse, batch_b)) == ["G1"]
    with warehouse.connect() as conn:
        rows = dict(conn.execute(select(import_batches.c.batch_id, import_batches.c.tenant_id)).all())
        staged = conn.scalar(select(func.count()).select_from(raw_records))
    assert rows == {batch_a: "acme", batch_b: "globex"} and staged == 0

    status = acme.get(f"/v1/batches/{batch_a}").json()
    assert (status["status"], status["partial"], status["origin"], status["landed"]) == (
        "open", False, "api", {"companies": 2})
    assert globex.get(f"/v1/batches/{batch_b}").json()["partial"] is True


# --------------------------------------------------------------------------- validation


def test_bad_records_are_refused_with_index_and_field_and_nothing_lands(warehouse, api, client, import_tenant):
    _, token = import_tenant("acme")
    acme = client(token)
    batch_id = acme.open_batch()
    body = [
        {"id": "C1", "name": "Globex"},
        {"id": "C2"},  # no name
        {"id": "C3", "name": "Initech", "colour": "red"},  # unknown field
        {"id": "C4", "name": 42},  # a number for a name
        "Hooli",  # not an object
        {"id": "C1", "name": "Globex again"},  # the id of index 0
    ]
    response = acme.post(f"/v1/batches/{batch_id}/companies", {"records": body})
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [(1, "name"), (2, "colour"), (3, "name"), (4, None),
                                                          (5, "id")]
    assert all(isinstance(e["reason"], str) and e["reason"] for e in errors)
    assert errors[0]["reason"] == "is required" and "same id 'C1' as the record at index 0" in errors[4]["reason"]
    assert response.json()["detail"] == "5 of 6 companies records refused; nothing of this request was kept"
    assert response.json()["error_count"] == 5

    contacts = acme.post(f"/v1/batches/{batch_id}/contacts", [{"id": "P1", "email": "not-an-address",
                                                                "last_name": "Doe", "inactive": "yes"}])
    assert [(e["index"], e["field"]) for e in contacts.json()["errors"]] == [(0, "email"), (0, "inactive")]
    spend = acme.post(f"/v1/batches/{batch_id}/spend", [{"company_id": "C1", "category": "Hardware",
                                                         "month": "2026-13", "amount": "1,250.00", "currency": "USD"}])
    assert [(e["index"], e["field"]) for e in spend.json()["errors"]] == [(0, "month"), (0, "amount")]
    assert landed(warehouse) == {}

    assert acme.post(f"/v1/batches/{batch_id}/widgets", [{"id": 1}]).status_code == 404
    for raw, status in ((b"[{", 400), (b'{"id": "C1"}', 422), (b"\xff\xfe", 400)):
        response = acme.post(f"/v1/batches/{batch_id}/companies", data=raw,
                             headers={"Content-Type": "application/json"})
        assert response.status_code == status and list(response.json()) == ["detail"], response.text
    assert acme.post("/v1/batches/abc/companies", []).status_code == 422
    assert acme.post("/v1/batches", {"partial": "yes"}).status_code == 422
    assert landed(warehouse) == {}


def test_too_many_records_in_one_request_are_refused(warehouse, api, client, import_tenant, monkeypatch):
    _, token = import_tenant("acme")
    acme = client(token)
    batch_id = acme.open_batch()
    monkeypatch.setattr(api_module, "MAX_RECORDS", 3)  # the server runs in this process
    response = acme.post(f"/v1/batches/{batch_id}/companies", [{"id": str(i), "name": f"C{i}"} for i in range(4)])
    assert response.status_code == 413 and "4 records in one request, over the 3 allowed" in response.json()["detail"]
    assert acme.post(f"/v1/batches/{batch_id}/companies", COMPANIES).json() == {"accepted": 2}


def test_a_body_over_the_limit_is_refused_with_413(warehouse, serve_api, client, import_tenant):
    server = serve_api(body_limit=2_000)
    _, token = import_tenant("acme")
    from hg_pipeline_tests.imports.conftest import Client

    acme = Client(server.url, token)
    batch_id = acme.open_batch()
    big = [{"id": str(i), "name": f"Company number {i}"} for i in range(100)]
    assert len(json.dumps(big)) > 2_000
    response = acme.post(f"/v1/batches/{batch_id}/companies", big)
    assert response.status_code == 413 and response.json()["detail"].startswith("the body is ")
    # without a Content-Length (chunked): counted while read
    chunked = acme.post(f"/v1/batches/{batch_id}/companies",
                        data=(json.dumps(big)[i:i + 500].encode() for i in range(0, len(json.dumps(big)), 500)),
                        headers={"Content-Type": "application/json"})
    assert chunked.status_code == 413 and "over the 2,000 bytes allowed" in chunked.json()["detail"]
    assert landed(warehouse) == {}
    assert acme.post(f"/v1/batches/{batch_id}/companies", big[:10]).json() == {"accepted": 10}


# --------------------------------------------------------------------------- idempotency


def test_the_same_post_twice_with_one_idempotency_key_lands_once(warehouse, api, client, import_tenant):
    _, token = import_tenant("acme")
    acme = client(token)
    opened = [acme.post("/v1/batches", {}, headers={"Idempotency-Key": "open-1"}) for _ in range(2)]
    assert [r.status_code for r in opened] == [201, 201] and opened[0].json() == opened[1].json()
    assert batch_count(warehouse) == 1
    batch_id = opened[0].json()["batch_id"]

    path = f"/v1/batches/{batch_id}/companies"
    first = acme.post(path, COMPANIES, headers={"Idempotency-Key": "post-1"})
    assert first.status_code == 200 and first.json() == {"accepted": 2}
    # Meanwhile another request renames C1; the retry must not bring the old name back.
    assert acme.post(path, [{"id": "C1", "name": "Globex Corp"}]).status_code == 200
    retry = acme.post(path, COMPANIES, headers={"Idempotency-Key": "post-1"})
    assert (retry.status_code, retry.json()) == (first.status_code, first.json())
    assert retry.headers["idempotent-replayed"] == "true"
    assert json.loads(landed(warehouse, batch_id)["C1"])["name"] == "Globex Corp"

    other = acme.post(path, COMPANIES[:1], headers={"Idempotency-Key": "post-1"})
    assert (other.status_code, other.json()) == (422, {"detail": "Idempotency-Key reused for a different request"})
    elsewhere = acme.post(f"/v1/batches/{batch_id}/contacts", [], headers={"Idempotency-Key": "post-1"})
    assert elsewhere.status_code == 422  # same body digest, another path

    # a refused request is answered the same way again, and still lands nothing
    bad = [acme.post(path, [{"id": "C9"}], headers={"Idempotency-Key": "bad-1"}) for _ in range(2)]
    assert [r.status_code for r in bad] == [422, 422] and bad[0].json() == bad[1].json()
    assert sorted(landed(warehouse, batch_id)) == ["2", "C1"]

    # keys belong to a tenant: another tenant's identical key runs its own request
    _, token_b = import_tenant("globex")
    theirs = client(token_b).post("/v1/batches", {}, headers={"Idempotency-Key": "open-1"})
    assert theirs.status_code == 201 and theirs.json()["batch_id"] != batch_id


def test_concurrent_copies_of_one_request_run_once(warehouse, api, client, import_tenant):
    _, token = import_tenant("acme")
    acme = client(token)
    batch_id = acme.open_batch()
    records = [{"id": str(i), "name": f"Company {i}"} for i in range(20_000)]
    path = f"/v1/batches/{batch_id}/companies"

    def send(key: str):
        return client(token).post(path, records, headers={"Idempotency-Key": key})

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(send, ["same"] * 8))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) >= 1 and set(statuses) <= {200, 409}
    assert all(r.json() == {"accepted": 20_000} for r in responses if r.status_code == 200)
    assert all("still running" in r.json()["detail"] for r in responses if r.status_code == 409)
    with warehouse.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(import_records)) == 20_000
    with ThreadPoolExecutor(8) as pool:
        opened = list(pool.map(lambda _: client(token).post("/v1/batches", {}, headers={"Idempotency-Key": "o"}),
                               range(8)))
    assert batch_count(warehouse) == 2  # the one above and exactly one more
    assert len({r.json()["batch_id"] for r in opened if r.status_code == 201}) == 1


# --------------------------------------------------------------------------- commit


def test_commit_stages_the_batch_once(warehouse, api, client, import_tenant):
    _, token = import_tenant("acme")
    acme = client(token)
    batch_id = acme.open_batch()
    assert acme.post(f"/v1/batches/{batch_id}/commit").status_code == 422  # nothing posted yet
    acme.post(f"/v1/batches/{batch_id}/companies", COMPANIES)
    acme.post(f"/v1/batches/{batch_id}/products", [{"id": "P1", "name": "Laptop", "category": "Hardware/Laptops"}])

    committed = acme.post(f"/v1/batches/{batch_id}/commit", headers={"Idempotency-Key": "commit-1"})
    assert committed.status_code == 200, committed.text
    body = committed.json()
    assert (body["batch_id"], body["status"], body["partial"]) == (batch_id, "committed", False)
    assert body["staged"]["companies"] == 2 and body["staged"]["products"] == 1
    assert body["staged"]["company_types"] == 2 and body["staged"]["product_categories"] == 2
    assert body["vanished"]["companies"] == 0
    with warehouse.connect() as conn:
        staged = dict(conn.execute(select(raw_records.c.entity, func.count()).where(
            raw_records.c.tenant_id == "acme").group_by(raw_records.c.entity)).all())
    assert staged == {"companies": 2, "products": 1, "company_types": 2, "product_categories": 2}
    assert landed(warehouse) == {}  # the landed records went into staging

    again = acme.post(f"/v1/batches/{batch_id}/commit")
    assert again.status_code == 409 and again.json() == {"detail": f"import batch {batch_id} is committed, not open"}
    replay = acme.post(f"/v1/batches/{batch_id}/commit", headers={"Idempotency-Key": "commit-1"})
    assert (replay.status_code, replay.json()) == (200, body)
    late = acme.post(f"/v1/batches/{batch_id}/companies", [{"id": "C5", "name": "Late"}])
    assert late.status_code == 409 and landed(warehouse) == {}

    status = acme.get(f"/v1/batches/{batch_id}").json()
    assert status["status"] == "committed" and status["committed_at"] and status["landed"] == {}
    assert status["staged"]["companies"] == 2


# --------------------------------------------------------------------------- description


def test_openapi_health_and_schemas(warehouse, api, client, import_tenant):
    _, token = import_tenant("acme")
    anonymous = client(None)
    assert anonymous.get("/health").json() == {"status": "ok"}
    paths = anonymous.get("/openapi.json").json()["paths"]
    assert {"/health", "/v1/batches", "/v1/batches/{batch_id}", "/v1/batches/{batch_id}/commit",
            "/v1/batches/{batch_id}/{entity}", "/v1/schemas/{entity}"} <= set(paths)
    assert "requestBody" in paths["/v1/batches/{batch_id}/{entity}"]["post"]
    acme = client(token)
    for entity in formats.IMPORT_ENTITIES:
        assert acme.get(f"/v1/schemas/{entity}").json() == formats.json_schema(entity)
    unknown = acme.get("/v1/schemas/widgets")
    assert unknown.status_code == 404 and "expected one of companies" in unknown.json()["detail"]


# --------------------------------------------------------------------------- commands and outages


def test_the_cli_issues_lists_and_revokes_tokens(pg_url, warehouse, api, client, import_tenant, capsys):
    from hg_pipeline.cli import main

    import_tenant("acme")

    def cli(*args: str) -> tuple[int, str, str]:
        code = main([*args, "--database-url", pg_url])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = cli("tenant", "token", "acme")
    token = out.strip()
    assert code == 0 and client(token).open_batch()
    token_id = token[4:16]
    code, out, _ = cli("tenant", "tokens", "acme")
    assert code == 0 and f"{token_id}\t" in out and "active" in out and token[17:] not in out
    code, _, err = cli("tenant", "token", "acme", "--revoke", "feedfeedfeed")
    assert code == 2 and err.strip() == ("hg-pipeline: tenant acme has no import API token 'feedfeedfeed' "
                                         "(see `hg-pipeline tenant tokens acme`)")
    assert cli("tenant", "token", "acme", "--revoke", token_id)[0] == 0
    assert client(token).post("/v1/batches", {}).status_code == 401


def test_serve_import_api_serves_until_interrupted_and_names_a_taken_port(pg_url, warehouse, import_tenant,
                                                                            tmp_path):
    import signal
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    import requests

    _, token = import_tenant("acme")
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    command = [str(Path(sys.executable).parent / "hg-pipeline"), "serve-import-api", "--port", str(port),
               "--database-url", pg_url]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = requests.get(f"http://127.0.0.1:{port}/health", timeout=5)
                break
            except requests.ConnectionError:
                assert server.poll() is None and time.monotonic() < deadline, server.stderr.read()
                time.sleep(0.2)
        assert health.json() == {"status": "ok"}
        opened = requests.post(f"http://127.0.0.1:{port}/v1/batches", json={},
                               headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert opened.status_code == 201

        taken = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120)
        assert taken.returncode == 2
        assert taken.stderr.strip().splitlines() == [f"hg-pipeline: cannot listen on 127.0.0.1:{port}: "
                                                     "Address already in use"]
    finally:
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=30)
    assert f"import API on http://127.0.0.1:{port}" in out
    assert "Traceback" not in err and token[17:] not in out + err


def test_a_warehouse_that_stops_answering_is_a_503_in_one_line(warehouse, import_tenant):
    import uuid

    import psycopg
    import requests

    from hg_pipeline.warehouse import db
    from hg_pipeline.warehouse.schema import upgrade
    from hg_pipeline_tests.conftest import ADMIN_URL
    from hg_pipeline_tests.imports.conftest import ApiServer

    name = f"hg_test_gone_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{ADMIN_URL}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{ADMIN_URL.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"
    try:
        engine = db.connect(url)
        upgrade(engine)
        add_tenant(engine, Tenant("acme", "Acme", "import", None))
        token = tokens.issue(engine, "acme")
        server = ApiServer(url)
        try:
            assert requests.get(f"{server.url}/health", timeout=10).json() == {"status": "ok"}
            with psycopg.connect(f"{ADMIN_URL}/postgres", autocommit=True) as admin:
                admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            health = requests.get(f"{server.url}/health", timeout=30)
            assert (health.status_code, health.json()) == (503, {"detail": "the warehouse does not answer"})
            post = requests.post(f"{server.url}/v1/batches", json={}, timeout=30,
                                 headers={"Authorization": f"Bearer {token}"})
            assert (post.status_code, post.json()) == (503, {"detail": "the warehouse does not answer; retry later"})
        finally:
            server.stop()
    finally:
        db.dispose(url)
        with psycopg.connect(f"{ADMIN_URL}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
