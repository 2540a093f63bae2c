"""How a process of the pipeline collects cyclic garbage, whoever started it (`hg-pipeline`,
or Dagster's run worker: `orchestration/resources.py` sets it for each run).

A sync allocates millions of short-lived containers (decoded pages, records, frames) in a
process that holds millions of long-lived ones (Dagster, pandas, great-expectations). With
Python's thresholds (700, 10, 10) thirteen full collections walked all of them, 2.2 s of a
first full sync of the large dataset (2.6 s with the younger generations'; 0.27 s with these).
Refcounting frees everything but cycles; young cycles are still collected every 50,000 net
allocations, old ones about every 20 million.
"""

from __future__ import annotations

import gc

GC_THRESHOLDS = (50_000, 20, 20)


def collect_less() -> tuple[int, int, int]:
    """Set `GC_THRESHOLDS`; returns the thresholds they replace."""
    before = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    return before
