"""A list that holds its items pickled, in blocks: what a map stage's result keeps its rows in.

A mapped row as a dict of strings takes about 1 KB; pickled in blocks of 10,000, where a
block's repeated values (tenant, company ids, types) are stored once, about 100 bytes. A map
stage of a million assets therefore holds about 100 MB instead of a GiB, Dagster stores it by
writing the blocks as they are, and the checks and the load unpickle one block at a time.
Items must not change once appended (rows and decisions are built, then appended).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice

BLOCK_SIZE = 10_000


class Packed(Sequence):
    """Appends and iteration like a list; items are read back as copies."""

    def __init__(self, items: Iterable = ()) -> None:
        self._blocks: list[bytes] = []
        self._tail: list = []
        self._length = 0
        self.extend(items)

    def append(self, item) -> None:
        self._tail.append(item)
        self._length += 1
        if len(self._tail) >= BLOCK_SIZE:
            self._blocks.append(pickle.dumps(self._tail, protocol=pickle.HIGHEST_PROTOCOL))
            self._tail = []

    def extend(self, items: Iterable) -> None:
        for item in items:
            self.append(item)

    def blocks(self) -> Iterator[list]:
        """The items a block at a time (at most BLOCK_SIZE in memory at once)."""
        for block in self._blocks:
            yield pickle.loads(block)
        if self._tail:
            yield list(self._tail)

    def __iter__(self) -> Iterator:
        for block in self.blocks():
            yield from block

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(self._length)
            if step == 1:  # a head or a window: unpickle only the blocks up to its end
                return list(islice(iter(self), start, stop))
            return list(self)[index]
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError("Packed index out of range")
        number, offset = divmod(index, BLOCK_SIZE)
        if number < len(self._blocks):
            return pickle.loads(self._blocks[number])[offset]
        return self._tail[offset]

    def __eq__(self, other) -> bool:
        if not isinstance(other, (Packed, list)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    def __repr__(self) -> str:
        return f"Packed({len(self)} items in {len(self._blocks)} blocks + {len(self._tail)})"


def blocks_of(items: Iterable) -> Iterator[list]:
    """`items` a block at a time: a Packed one's blocks as stored, anything else whole."""
    if isinstance(items, Packed):
        yield from items.blocks()
    else:
        yield list(items)
