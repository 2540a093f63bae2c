"""How a connector proves who it is: pluggable `requests.auth.AuthBase` strategies.

`PsaHttp` applies the auth to each request after its origin check (never on the session),
so no credential leaves the tenant's origin. Every value an auth sends is registered with
`hg_pipeline.secrets` when it is made (the OAuth2 token when it is fetched), so it is
scrubbed from every message.

- `BasicAuth`: user and password, plus fixed headers (ConnectWise: `company+public` /
  `private` and its `clientId` header);
- `OAuth2ClientCredentials`: a bearer token from the token endpoint (form body,
  grant_type=client_credentials), cached for the process per origin and credentials (every
  entity of a sync uses one token) and fetched again about 60 s before it expires and once
  after a 401; the token endpoint is on the tenant's origin like everything else;
- `HeaderAuth`: credentials as headers (Autotask: ApiIntegrationCode, UserName, Secret).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import requests
from requests.auth import AuthBase, _basic_auth_str

from hg_pipeline.secrets import register, register_basic, register_headers

if TYPE_CHECKING:
    from hg_pipeline.connectors.http import PsaHttp

TOKEN_MARGIN = 60.0  # seconds before `expires_in` at which a token is fetched again


class PsaAuth(AuthBase):
    """An auth `PsaHttp` can drive: `prepare(http)` before each attempt (fetch what must be
    fetched), `after_401()` True when asking again may cure a 401 (a fresh token)."""

    def prepare(self, http: "PsaHttp") -> None:
        pass

    def after_401(self, sent_authorization: str | None = None) -> bool:
        return False

    def secrets(self) -> tuple[str, ...]:
        """The plain values this auth sends, for the client's own scrubbing."""
        return ()


class HeaderAuth(PsaAuth):
    """Fixed headers on every request."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        self.headers = dict(headers)
        register_headers(self.headers)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.update(self.headers)
        return request

    def secrets(self) -> tuple[str, ...]:
        return tuple(self.headers.values())


class BasicAuth(HeaderAuth):
    """HTTP Basic auth, plus fixed headers (ConnectWise's `clientId`)."""

    def __init__(self, user: str, password: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(headers or {})
        self.user, self.password = user, password
        register_basic(user, password)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        super().__call__(request)
        request.headers["Authorization"] = _basic_auth_str(self.user, self.password)
        return request

    def secrets(self) -> tuple[str, ...]:
        return (self.user, self.password, *super().secrets())


@dataclass
class _Token:
    lock: threading.Lock = field(default_factory=threading.Lock)
    value: str | None = None
    expires_at: float = 0.0


_tokens: dict[str, _Token] = {}
_tokens_lock = threading.Lock()


def _shared_token(http: "PsaHttp", token_path: str, form: Mapping[str, str]) -> _Token:
    """The token of these credentials at this origin, shared by every connector of the process
    (one token request per sync, not one per entity)."""
    from hg_pipeline.connectors.discovery import key

    name = key("oauth2", str(http.origin), token_path, sorted(form.items()))
    with _tokens_lock:
        return _tokens.setdefault(name, _Token())


class OAuth2ClientCredentials(PsaAuth):
    """A bearer token from `token_path` (relative to the base URL, or absolute on its origin)
    by the client-credentials grant. One token per origin and credentials in the process,
    shared by every thread and connector; fetching it is guarded by a lock, so concurrent
    pages make one token request."""

    def __init__(self, token_path: str, client_id: str, client_secret: str, *, scope: str | None = None,
                 tenant: str | None = None, margin: float = TOKEN_MARGIN) -> None:
        self.token_path = token_path
        self.form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}
        if scope:
            self.form["scope"] = scope
        if tenant:
            self.form["tenant"] = tenant
        self.margin = margin
        self._shared: _Token | None = None  # bound to the origin at the first request
        self.fetched = 0  # tokens this auth fetched, for tests and metadata
        register(client_id, client_secret)

    def prepare(self, http: "PsaHttp") -> None:
        if self._shared is None:
            self._shared = _shared_token(http, self.token_path, self.form)
        shared = self._shared
        with shared.lock:
            if shared.value is None or time.monotonic() >= shared.expires_at - self.margin:
                self._fetch(http, shared)

    def _fetch(self, http: "PsaHttp", shared: _Token) -> None:
        from hg_pipeline.connectors.http import PsaError

        body, _ = http.request("POST", self.token_path, data=self.form, authenticated=False)
        token = body.get("access_token") if isinstance(body, dict) else None
        expires_in = body.get("expires_in", 3600) if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise PsaError(f"POST {self.token_path}: the token answer holds no access_token", url_path=self.token_path)
        if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)):
            expires_in = 3600
        register(token)
        shared.value = token
        shared.expires_at = time.monotonic() + float(expires_in)
        self.fetched += 1

    def after_401(self, sent_authorization: str | None = None) -> bool:
        """Drop the token the 401 answered (unless another thread already replaced it)."""
        shared = self._shared
        if shared is not None:
            with shared.lock:
                if sent_authorization is None or sent_authorization == f"Bearer {shared.value}":
                    shared.value = None
        return True

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = None
        if self._shared is not None:
            with self._shared.lock:
                token = self._shared.value
        if token is not None:
            request.headers["Authorization"] = f"Bearer {token}"
        return request

    def secrets(self) -> tuple[str, ...]:
        return (self.form["client_id"], self.form["client_secret"])
