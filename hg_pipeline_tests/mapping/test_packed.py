"""Packed: a map stage's rows held pickled in blocks, read back as the list they were."""

from __future__ import annotations

import pickle

import pytest

from hg_pipeline.mapping import packed
from hg_pipeline.mapping.packed import Packed, blocks_of


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(packed, "BLOCK_SIZE", 4)


def _rows(n: int) -> list[dict]:
    return [{"id": f"hg-{i}", "psa_id": str(i), "tenant_id": "acme"} for i in range(n)]


def test_reads_back_what_was_appended_across_blocks():
    rows = _rows(10)
    held = Packed(rows)

    assert len(held) == 10 and list(held) == rows and held == rows
    assert [len(block) for block in held.blocks()] == [4, 4, 2]
    assert held[0] == rows[0] and held[5] == rows[5] and held[-1] == rows[9]
    assert held[3:6] == rows[3:6] and held[:2] == rows[:2] and held[::3] == rows[::3]
    with pytest.raises(IndexError):
        held[10]


def test_the_blocks_are_pickled_not_the_rows():
    held = Packed(_rows(9))
    assert all(isinstance(block, bytes) for block in held._blocks) and len(held._blocks) == 2
    again = pickle.loads(pickle.dumps(held))
    assert again == _rows(9) and again != _rows(8)


def test_a_row_changed_after_it_was_sealed_is_not_changed_in_the_pack():
    # Items must not change once appended: what a block holds is what was appended.
    rows = _rows(4)
    held = Packed(rows)
    rows[0]["psa_id"] = "changed"
    assert held[0]["psa_id"] == "0"


def test_blocks_of_takes_a_pack_block_by_block_and_a_list_whole():
    assert [len(b) for b in blocks_of(Packed(_rows(6)))] == [4, 2]
    assert [len(b) for b in blocks_of(_rows(6))] == [6]
    assert list(blocks_of(Packed())) == []
