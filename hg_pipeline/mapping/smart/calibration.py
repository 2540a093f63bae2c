"""Calibrated confidence: the model's top probability -> the chance the suggestion is right.

Fitted by isotonic regression (pool adjacent violators) on held-out predictions: each
labelled row is scored by a model that never saw its product family, and whether that top
suggestion was right is the target. The fitted step curve is non-decreasing, so a higher
probability never gets a lower confidence, and among rows above a confidence c the share that
is right is at least about c.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class Calibrator:
    def __init__(self, xs: Sequence[float], ys: Sequence[float]) -> None:
        self.xs = np.asarray(xs, dtype=float)
        self.ys = np.asarray(ys, dtype=float)

    @classmethod
    def identity(cls) -> Calibrator:
        return cls([0.0, 1.0], [0.0, 1.0])

    @classmethod
    def fit(cls, scores: Sequence[float], correct: Sequence[bool]) -> Calibrator:
        """Isotonic regression of `correct` (0/1) on `scores`."""
        order = np.argsort(np.asarray(scores, dtype=float), kind="stable")
        x = np.asarray(scores, dtype=float)[order]
        y = np.asarray(correct, dtype=float)[order]
        # blocks: [sum of y, count, lowest x, highest x]; merge while a block is above its successor
        blocks: list[list[float]] = []
        for xi, yi in zip(x, y):
            blocks.append([yi, 1.0, xi, xi])
            while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
                total, count, _, high = blocks.pop()
                blocks[-1][0] += total
                blocks[-1][1] += count
                blocks[-1][3] = high
        xs, ys = [], []
        for total, count, low, high in blocks:
            xs.extend((low, high))
            ys.extend((total / count, total / count))
        return cls(xs, ys)

    def __call__(self, score):
        return np.interp(score, self.xs, self.ys)

    def as_dict(self) -> dict:
        return {"xs": self.xs.round(6).tolist(), "ys": self.ys.round(6).tolist()}
