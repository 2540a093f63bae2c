"""Fixtures: ConnectWise simulators on loopback and connectors pointed at them."""

from __future__ import annotations

import pytest

from hg_pipeline.connectors import build_connector
from hg_pipeline.simulators.connectwise import DEMO_CREDENTIALS, ConnectWiseSimulator
from hg_pipeline.simulators.datasets import generate


@pytest.fixture
def sim():
    with ConnectWiseSimulator(generate("small", seed=1)) as simulator:
        yield simulator


@pytest.fixture
def connect():
    """connect(sim, **options) -> a ConnectWise connector with the demo keys (closed afterwards)."""
    made = []

    def make(simulator, credentials=None, **options):
        options.setdefault("backoff", 0.05)
        connector = build_connector("connectwise", simulator.base_url, credentials or DEMO_CREDENTIALS, **options)
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()
