"""The sources this pipeline knows: one `SourceSpec` each, and nothing else names a source.

Tenants (which keys a tenant must give), the CLI (`tenant add --source`, `simulate`), the
demo, the bench and the Dagster resource read this registry. Connector, simulator and default
mapping are dotted paths ("module:attribute"), imported only when used: the registry loads
before any of them, and a source whose simulator is not written yet is still a source.

A simulator module provides `DEMO_CREDENTIALS` (plain values it accepts by default) and
`run_forever(port, dataset_name, seed, credentials, tls=False)`; the attribute named here is
its server class, started as a context manager with `(dataset, credentials=..., port=...)`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


class UnknownSource(ValueError):
    """A source this pipeline does not know, or cannot read yet; the message is one line."""


@dataclass(frozen=True)
class SourceSpec:
    name: str
    title: str  # how people write the vendor's name
    required_keys: tuple[str, ...]
    optional_keys: tuple[str, ...] = ()
    connector: str | None = None  # "module:factory"; called (base_url, credentials, **options)
    simulator: str | None = None  # "module:ServerClass"
    default_mapping: str | None = None  # "module:function" returning a mapping document
    members_word: str = "members"  # the vendor's word for the MSP's staff
    # The request rate a connector keeps to when neither the tenant nor HG_PSA_REQUESTS_PER_SECOND
    # says otherwise (shared by every tenant of one PSA instance); None: only 429s slow it down
    # (ConnectWise publishes no number: psa-api-notes 1.3).
    default_requests_per_second: float | None = None
    # Records are pushed (files, the import API) and staged as they arrive: a sync reads
    # nothing, its extract stages report what is staged.
    pushed: bool = False

    @property
    def credential_keys(self) -> tuple[str, ...]:
        return self.required_keys + self.optional_keys

    def connector_factory(self):
        if self.connector is None:
            raise UnknownSource(f"source {self.name} is not supported yet (no connector)")
        return _load(self.connector)

    def simulator_module(self) -> ModuleType:
        if self.simulator is None:
            raise UnknownSource(f"no simulator for {self.name!r} yet (available: {', '.join(simulated())})")
        return importlib.import_module(self.simulator.partition(":")[0])

    def simulator_class(self) -> type:
        self.simulator_module()  # the one-line error when there is none
        return _load(self.simulator)

    def default_document(self) -> str:
        if self.default_mapping is None:
            raise UnknownSource(f"source {self.name} has no default mapping yet")
        return _load(self.default_mapping)()


def _load(dotted: str):
    module, _, attribute = dotted.partition(":")
    return getattr(importlib.import_module(module), attribute)


SOURCES: dict[str, SourceSpec] = {spec.name: spec for spec in (
    SourceSpec(
        name="connectwise", title="ConnectWise Manage",
        required_keys=("company_id", "public_key", "private_key", "client_id"),
        connector="hg_pipeline.connectors.connectwise:ConnectWiseConnector",
        simulator="hg_pipeline.simulators.connectwise:ConnectWiseSimulator",
        default_mapping="hg_pipeline.mapping.document:default_document",
        members_word="members",
    ),
    SourceSpec(
        name="halopsa", title="HaloPSA",
        required_keys=("client_id", "client_secret"), optional_keys=("tenant",),
        connector="hg_pipeline.connectors.halopsa:HaloPsaConnector",
        simulator="hg_pipeline.simulators.halopsa:HaloPsaSimulator",
        default_mapping="hg_pipeline.mapping.document:default_document",  # same type/category names
        members_word="agents",
        # Hosted Halo: 300 requests per rolling 5 minutes; 10% headroom.
        default_requests_per_second=0.9,
    ),
    SourceSpec(
        name="autotask", title="Autotask",
        required_keys=("username", "secret", "integration_code"),
        connector="hg_pipeline.connectors.autotask:AutotaskConnector",
        simulator="hg_pipeline.simulators.autotask:AutotaskSimulator",
        default_mapping="hg_pipeline.mapping.document:default_document",  # same type/category names
        members_word="resources",
        # 10,000 requests per hour per database, shared with the MSP's other integrations:
        # half of it by default (5,000/h).
        default_requests_per_second=1.39,
    ),
    # No PSA: files (`hg-pipeline import`) or the import API push the records (hg_pipeline/imports/).
    SourceSpec(name="import", title="import", required_keys=(), pushed=True,
               default_mapping="hg_pipeline.mapping.document:default_document"),  # same type/category names
)}


def source(name: str) -> SourceSpec:
    """The spec of `name`; UnknownSource (one line) for a name no source has."""
    try:
        return SOURCES[name]
    except KeyError:
        raise UnknownSource(f"source {name!r} is not one of {', '.join(SOURCES)}") from None


def simulated() -> tuple[str, ...]:
    """The sources that have a simulator."""
    return tuple(name for name, spec in SOURCES.items() if spec.simulator is not None)


def demo_ready() -> tuple[str, ...]:
    """The sources with a default mapping and a simulator and connector (or example files, for a
    pushed source): what `demo` can run."""
    return tuple(name for name, spec in SOURCES.items()
                 if spec.default_mapping and (spec.pushed or (spec.simulator and spec.connector)))


def every_credential_key() -> frozenset[str]:
    return frozenset(key for spec in SOURCES.values() for key in spec.credential_keys)
