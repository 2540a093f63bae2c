"""The simulators' HTTP controls a benchmark uses across processes (`/_simulator/...`): the
stats, the touch that changes a share of the records now, and the rate limit."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest
import requests

from hg_pipeline.connectors import build_connector
from hg_pipeline.simulators.base import RATE_LIMIT_PATH, STATS_PATH, TOUCH_PATH
from hg_pipeline.simulators.datasets import generate
from hg_pipeline_tests.connectors.conformance import demo_credentials, start_simulator

SOURCES = ["connectwise", "halopsa", "autotask"]
ENTITIES = {"companies": "companies", "contacts": "contacts", "assets": "configurations"}


@pytest.fixture(params=SOURCES)
def psa(request):
    simulator = start_simulator(request.param, generate("small", seed=1))
    connector = build_connector(request.param, simulator.base_url, demo_credentials(request.param),
                                backoff=0.02, max_wait=2.0)
    yield simulator, connector
    connector.close()
    simulator.stop()


def _ids(connector, entity: str, since: datetime) -> list[str]:
    return sorted(connector.normalize(entity, payload)["psa_id"]
                  for page in connector.iter_pages(entity, since=since) for payload in page)


def test_touch_changes_the_share_and_an_incremental_read_returns_exactly_those(psa):
    simulator, connector = psa
    since = datetime.now(timezone.utc) - timedelta(seconds=2)  # the dataset's edits are all older
    for entity in ENTITIES:
        assert _ids(connector, entity, since) == []
    names = {kind: {r["id"]: (r.get("name"), r.get("lastName")) for r in simulator.dataset.records(kind)}
             for kind in ENTITIES.values()}

    answer = requests.post(f"{simulator.base_url}{TOUCH_PATH}?share=0.05&seed=7", timeout=10)

    assert answer.status_code == 200
    changed = answer.json()["changed"]
    after = since.strftime("%Y-%m-%dT%H:%M:%SZ")  # same format: text order is time order
    for entity, kind in ENTITIES.items():
        records = simulator.dataset.records(kind)
        assert changed[kind] == math.ceil(len(records) * 0.05) > 0
        touched = [r for r in records if r["_info"]["lastUpdated"] >= after]
        assert len(touched) == changed[kind]
        for record in touched:  # something a user sees changed too
            assert (record.get("name"), record.get("lastName")) != names[kind][record["id"]]
        assert _ids(connector, entity, since) == sorted(str(r["id"]) for r in touched)


def test_touch_picks_by_seed_and_refuses_a_bad_share(psa):
    simulator, connector = psa
    other = start_simulator("connectwise", generate("small", seed=1))
    try:
        for sim in (simulator, other):
            requests.post(f"{sim.base_url}{TOUCH_PATH}?share=0.1&seed=3", timeout=10).raise_for_status()
        edited = [sorted(r["id"] for r in sim.dataset.companies if r["name"].endswith(" (edit 1)"))
                  for sim in (simulator, other)]
        assert edited[0] == edited[1] and len(edited[0]) == 4
    finally:
        other.stop()
    assert requests.post(f"{simulator.base_url}{TOUCH_PATH}?share=2", timeout=10).status_code == 400
    assert requests.get(f"{simulator.base_url}{TOUCH_PATH}", timeout=10).status_code == 405


def test_rate_limit_control_and_the_stats_count_its_429s(psa):
    simulator, connector = psa
    control = f"{simulator.base_url}{RATE_LIMIT_PATH}"
    assert requests.post(f"{control}?requests=1&seconds=60", timeout=10).json() == {"rate_limit": [1, 60.0]}
    assert simulator.rate_limit == (1, 60.0)
    before = requests.get(f"{simulator.base_url}{STATS_PATH}", timeout=10).json()
    for _ in range(3):
        requests.get(simulator.api_url + "/anything", timeout=10)
    requests.get(simulator.base_url + "/outside-the-api", timeout=10)
    stats = requests.get(f"{simulator.base_url}{STATS_PATH}", timeout=10).json()
    assert stats == {"requests": before["requests"] + 3, "outside_api": before["outside_api"] + 1, "rejected": 2}
    assert requests.post(f"{control}?requests=0", timeout=10).json() == {"rate_limit": None}
    assert simulator.rate_limit is None
    assert requests.post(f"{control}?requests=-1", timeout=10).status_code == 400
