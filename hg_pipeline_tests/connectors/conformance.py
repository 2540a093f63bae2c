"""Per-source adapters for the connector conformance suite (test_conformance.py).

The simulators share one fault API (`simulators/base.py`: fail_next, break_transfers, counters);
what differs per vendor is how a test edits the simulator's live dataset: which list holds the
records of a canonical entity and how a record says it changed. One adapter per source with
a simulator; a new source adds its own here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from hg_pipeline.connectors.registry import source


@dataclass(frozen=True)
class Adapter:
    kinds: dict[str, str]  # canonical entity -> the dataset list that holds its records
    touch: Callable[[dict, datetime], None]  # mark a dataset record changed at that moment
    psa_id: Callable[[dict], str] = lambda record: str(record["id"])

    def records(self, simulator, entity: str) -> list[dict]:
        return simulator.dataset.records(self.kinds[entity])


def _cw_touch(record: dict, moment: datetime) -> None:
    record["_info"]["lastUpdated"] = moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


ADAPTERS: dict[str, Adapter] = {
    "connectwise": Adapter(kinds={"companies": "companies", "contacts": "contacts", "assets": "configurations"},
                           touch=_cw_touch),
    # The HaloPSA simulator translates the ConnectWise-shaped dataset (alastupdate & co. follow
    # _info.lastUpdated); Halo deletes for good, so no company of the small dataset is deleted.
    "halopsa": Adapter(kinds={"companies": "companies", "contacts": "contacts", "assets": "configurations"},
                       touch=_cw_touch),
    # The Autotask simulator translates the same dataset (lastTrackedModifiedDateTime & co.
    # follow _info.lastUpdated).
    "autotask": Adapter(kinds={"companies": "companies", "contacts": "contacts", "assets": "configurations"},
                        touch=_cw_touch),
}


def start_simulator(name: str, dataset):
    """A running simulator of source `name` serving `dataset`, with its demo credentials."""
    return source(name).simulator_class()(dataset).start()


def demo_credentials(name: str) -> dict[str, str]:
    return dict(source(name).simulator_module().DEMO_CREDENTIALS)
