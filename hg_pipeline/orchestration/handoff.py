"""Map stages' outputs let go of their rows once Dagster has stored them.

`hg-pipeline sync` runs its job with `execute_in_process`, which keeps every step's output value
in memory until the run ends (for `output_for_node`): a full sync would hold the mapped rows of
every entity at once, over a GiB for an MSP ten times the large dataset. Dagster stores an
output (the IO manager pickles it) as soon as the stage yields it, so a stage empties its own
copy once its checks are done. A released value is marked: were it ever stored after that, the
load refuses it rather than loading an empty set.
"""

from __future__ import annotations


def release(value, *bulky: str) -> None:
    """Empty `value`'s `bulky` lists and mark it released."""
    for name in bulky:
        setattr(value, name, [])
    value.released = True


def released_reason(value) -> str | None:
    """Why a load must not use `value`, or None."""
    if getattr(value, "released", False):
        return "its map stage's output arrived emptied (released before Dagster stored it); nothing loaded"
    return None
