"""Fixtures for the import API: import tenants with tokens, and the real server (uvicorn) on a
free loopback port, in a thread of the test process."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests
import uvicorn

from hg_pipeline.imports import tokens
from hg_pipeline.imports.api import create_app
from hg_pipeline.warehouse.tenants import Tenant, add_tenant


class ApiServer:
    def __init__(self, database_url: str, body_limit: int | None = None) -> None:
        sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(create_app(database_url, body_limit=body_limit), log_config=None, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the import API did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def serve_api(pg_url, warehouse):
    """Starts the import API on the test warehouse (optionally with a body limit); stops them all."""
    servers: list[ApiServer] = []

    def start(body_limit: int | None = None) -> ApiServer:
        servers.append(ApiServer(pg_url, body_limit))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def api(serve_api) -> ApiServer:
    return serve_api()


@pytest.fixture
def import_tenant(warehouse):
    """An import tenant (no PSA) and one token of it: (tenant_id, token)."""

    def make(tenant_id: str) -> tuple[str, str]:
        add_tenant(warehouse, Tenant(tenant_id, tenant_id.title(), "import", None,
                                     notify_email=f"ops@{tenant_id}.example"))
        return tenant_id, tokens.issue(warehouse, tenant_id)

    return make


class Client:
    """requests with one tenant's token."""

    def __init__(self, base_url: str, token: str | None) -> None:
        self.base_url, self.session = base_url, requests.Session()
        if token is not None:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.session.get(self.base_url + path, timeout=60, **kwargs)

    def post(self, path: str, json=None, **kwargs) -> requests.Response:
        return self.session.post(self.base_url + path, json=json, timeout=120, **kwargs)

    def open_batch(self, partial: bool = False) -> int:
        response = self.post("/v1/batches", {"partial": partial})
        assert response.status_code == 201, response.text
        return response.json()["batch_id"]


@pytest.fixture
def client(api):
    return lambda token: Client(api.url, token)
