"""PSA connectors: one module per source on a shared HTTP core (auth, paging, retries, rate
limit); `registry.py` names the sources."""

from __future__ import annotations

from hg_pipeline.connectors.base import Connector, Endpoint
from hg_pipeline.connectors.credentials import CredentialError, parse_credential_args, resolve_credentials
from hg_pipeline.connectors.http import PsaAuthError, PsaError, PsaUnreachable
from hg_pipeline.connectors.records import RecordError
from hg_pipeline.connectors.registry import SOURCES, SourceSpec, UnknownSource, source

__all__ = [
    "Connector", "CredentialError", "Endpoint", "PsaAuthError", "PsaError", "PsaUnreachable", "RecordError",
    "SOURCES", "SourceSpec", "UnknownSource", "build_connector", "parse_credential_args", "resolve_credentials",
    "source",
]


def build_connector(source_name: str, base_url: str, credentials: dict[str, str], **options) -> Connector:
    """The connector for `source_name`, given resolved (plain) credentials; UnknownSource for a
    source with no connector.

    `options` go to the connector: page_size, concurrency, requests_per_second,
    max_retries, timeout, deadline, backoff, max_wait, since_inclusive, http_options.
    """
    return source(source_name).connector_factory()(base_url, credentials, **options)
