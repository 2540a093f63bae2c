"""Fixtures: a fresh small dataset served by a ConnectWise simulator on loopback."""

from __future__ import annotations

import pytest
import requests

from hg_pipeline.simulators.connectwise import DEMO_CREDENTIALS, ConnectWiseSimulator
from hg_pipeline.simulators.datasets import generate


@pytest.fixture
def sim():
    with ConnectWiseSimulator(generate("small", seed=1)) as simulator:
        yield simulator


@pytest.fixture
def cw():
    """A requests session that authenticates like a ConnectWise integration (demo keys)."""
    session = requests.Session()
    session.auth = (f"{DEMO_CREDENTIALS['company_id']}+{DEMO_CREDENTIALS['public_key']}",
                    DEMO_CREDENTIALS["private_key"])
    session.headers["clientId"] = DEMO_CREDENTIALS["client_id"]
    yield session
    session.close()
