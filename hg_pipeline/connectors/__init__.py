"""PSA connectors: one module per source on a shared HTTP core (paging, retries, rate limit)."""

from __future__ import annotations

from hg_pipeline.connectors.connectwise import ConnectWiseConnector, RecordError
from hg_pipeline.connectors.credentials import CredentialError, parse_credential_args, resolve_credentials
from hg_pipeline.connectors.http import PsaAuthError, PsaError, PsaUnreachable

# Credential keys each source needs (product contract, section 1).
CREDENTIAL_KEYS: dict[str, tuple[str, ...]] = {
    "connectwise": ("company_id", "public_key", "private_key", "client_id"),
    "halopsa": ("client_id", "client_secret"),
    "autotask": ("username", "secret", "integration_code"),
    "import": (),
}

__all__ = [
    "CREDENTIAL_KEYS", "ConnectWiseConnector", "CredentialError", "PsaAuthError", "PsaError",
    "PsaUnreachable", "RecordError", "build_connector", "parse_credential_args", "resolve_credentials",
]


def build_connector(source: str, base_url: str, credentials: dict[str, str], **options) -> ConnectWiseConnector:
    """The connector for `source`, given resolved (plain) credentials.

    `options` go to the connector: page_size, concurrency, requests_per_second,
    max_retries, timeout, deadline, backoff, max_wait, since_inclusive.
    """
    if source == "connectwise":
        return ConnectWiseConnector(base_url, credentials, **options)
    raise ValueError(f"source {source} is not supported yet")
