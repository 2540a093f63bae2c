"""A map stage empties its output once Dagster stored it (orchestration/handoff.py); a released
value that reached a load anyway is refused, never loaded as an empty set."""

from __future__ import annotations

import pickle

from hg_pipeline.mapping.engine import Decision, MappingResult
from hg_pipeline.orchestration.handoff import release, released_reason
from hg_pipeline.warehouse.spend import DerivedSpend


def test_a_result_stored_before_its_release_keeps_everything_and_a_released_one_is_refused():
    result = MappingResult("assets", rows=[{"id": "a1", "psa_id": "1"}],
                           decisions=[Decision("assets", "1", "mapped", "type Server -> import", "type")])
    stored = pickle.dumps(result)  # what the IO manager does when the stage yields it
    release(result, "rows", "decisions", "categories", "distributions")
    assert result.rows == [] and result.decisions == [] and result.released

    loaded = pickle.loads(stored)
    assert released_reason(loaded) is None and loaded.rows == [{"id": "a1", "psa_id": "1"}]
    late = pickle.loads(pickle.dumps(result))  # stored after the release: the load must refuse it
    assert released_reason(late) == ("its map stage's output arrived emptied (released before Dagster stored "
                                     "it); nothing loaded")


def test_spend_is_released_the_same_way():
    derived = DerivedSpend(rows=[("c1", "cat", None, "2026-10", 10, "USD")], lines=1)
    release(derived, "rows", "apart")
    assert derived.rows == [] and released_reason(pickle.loads(pickle.dumps(derived))) is not None
    assert derived.lines == 1  # the figures stay
