"""Auth strategies and POST through the HTTP core, against a small PSA on loopback that issues
OAuth2 tokens (client credentials, form body) and checks them, or checks vendor headers."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

from hg_pipeline import secrets
from hg_pipeline.connectors.auth import BasicAuth, HeaderAuth, OAuth2ClientCredentials
from hg_pipeline.connectors.http import PsaAuthError, PsaError, PsaHttp

CLIENT_ID, CLIENT_SECRET = "halo-client-id-1", "halo-client-secret-value-2"


class _TokenPsa(ThreadingHTTPServer):
    """/auth/token hands out tokens valid `expires_in` seconds; /api/* wants a live one."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.expires_in = 3600
        self.issued: list[str] = []
        self.token_forms: list[dict] = []
        self.revoked: set[str] = set()
        self.seen: list[tuple[str, str, dict, bytes]] = []  # method, path, headers, body
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _TokenPsa

    def log_message(self, format, *args) -> None:  # noqa: A002 - quiet
        pass

    def _reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        psa = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with psa.lock:
            psa.seen.append((self.command, self.path, dict(self.headers), body))
        if self.path == "/auth/token":
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            with psa.lock:
                psa.token_forms.append(form)
                if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
                    return self._reply(401, {"error": "invalid_client"})
                token = f"token-number-{len(psa.issued) + 1}-abcdef"
                psa.issued.append(token)
            return self._reply(200, {"access_token": token, "token_type": "Bearer", "expires_in": psa.expires_in})
        sent = self.headers.get("Authorization", "").removeprefix("Bearer ")
        with psa.lock:
            live = sent in psa.issued and sent not in psa.revoked
        if not live:
            return self._reply(401, {"message": "token expired or unknown"})
        return self._reply(200, {"method": self.command, "echo": json.loads(body) if body else None})

    do_GET = do_POST = _handle  # noqa: N815


@pytest.fixture
def psa():
    server = _TokenPsa()
    yield server
    server.shutdown()
    server.server_close()


def _oauth(psa, **options):
    auth = OAuth2ClientCredentials("/auth/token", CLIENT_ID, CLIENT_SECRET, scope="all", **options)
    return auth, PsaHttp(psa.base_url, auth=auth, backoff=0.01)


def test_oauth2_fetches_one_token_with_the_form_and_reuses_it(psa):
    auth, http = _oauth(psa, tenant="acme")
    for _ in range(3):
        body, _ = http.get_json("api/Client")
    assert body["method"] == "GET"
    assert auth.fetched == 1 and psa.token_forms == [
        {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
         "scope": "all", "tenant": "acme"}]
    token_request = next(s for s in psa.seen if s[1] == "/auth/token")
    assert "Authorization" not in token_request[2]  # the token request carries only its form
    assert secrets.scrub("saw token-number-1-abcdef") == "saw ***"


def test_oauth2_token_refetched_before_expiry_and_once_after_a_401(psa):
    psa.expires_in = 30  # within the 60 s margin: every request wants a fresh token
    auth, http = _oauth(psa)
    http.get_json("api/Client")
    http.get_json("api/Client")
    assert auth.fetched == 2
    psa.expires_in = 3600
    with psa.lock:
        psa.revoked.update(psa.issued)  # the PSA forgets its tokens early
    http.get_json("api/Client")
    assert auth.fetched == 3
    with psa.lock:  # every token refused: one renewal, then the 401 stands
        psa.issued.append("never")
        psa.revoked.update(["token-number-4-abcdef", "token-number-5-abcdef", "token-number-3-abcdef"])
    with pytest.raises(PsaAuthError, match=r"^GET /api/Client: HTTP 401") as refused:
        http.get_json("api/Client")
    assert auth.fetched == 4 and CLIENT_SECRET not in str(refused.value)


def test_oauth2_concurrent_requests_share_one_token_fetch(psa):
    auth, http = _oauth(psa)
    threads = [threading.Thread(target=http.get_json, args=("api/Client",)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert auth.fetched == 1 and len(psa.token_forms) == 1


def test_oauth2_token_endpoint_on_another_origin_is_refused_before_sending(psa):
    auth = OAuth2ClientCredentials("http://127.0.0.2:9/auth/token", CLIENT_ID, CLIENT_SECRET)
    http = PsaHttp(psa.base_url, auth=auth)
    with pytest.raises(PsaError, match="another origin"):
        http.get_json("api/Client")
    assert psa.seen == []


def test_post_with_a_json_body_and_header_auth(psa):
    with psa.lock:
        psa.issued.append("hdr")
    auth = HeaderAuth({"ApiIntegrationCode": "integration-code-7", "UserName": "api@x.example",
                       "Secret": "autotask-secret-9", "Authorization": "Bearer hdr"})
    http = PsaHttp(psa.base_url, auth=auth)
    body, _ = http.request("POST", "api/Companies/query", json={"filter": [{"op": "gt", "field": "id", "value": 0}]})
    assert body == {"method": "POST", "echo": {"filter": [{"op": "gt", "field": "id", "value": 0}]}}
    method, _, headers, _ = psa.seen[-1]
    assert method == "POST" and headers["Secret"] == "autotask-secret-9"
    assert secrets.scrub("autotask-secret-9 integration-code-7") == "*** ***"


def test_basic_auth_sends_its_headers_and_a_401_is_not_retried(psa):
    http = PsaHttp(psa.base_url, auth=BasicAuth("co+public-key", "private-key-value", headers={"clientId": "cid-1"}))
    with pytest.raises(PsaAuthError, match=r"^GET /api/x: HTTP 401"):
        http.get_json("api/x")
    headers = psa.seen[-1][2]
    assert len(psa.seen) == 1 and headers["clientId"] == "cid-1" and headers["Authorization"].startswith("Basic ")
