"""Cross-validated figures of the smart-mapping model (`hg-pipeline mapping evaluate`).

Every figure is on held-out rows: the labelled set is split into folds by product family, each
fold scored by a model trained on the other folds. Precision and coverage at the threshold use
confidences cross-fitted too: the calibration curve that scores a fold is fitted on the
held-out scores of the other folds only.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from hg_pipeline.mapping.smart.calibration import Calibrator
from hg_pipeline.mapping.smart.labelled import FOLDS, LabelledRow, fold_of, labelled_rows
from hg_pipeline.mapping.smart.model import Example, SmartModel

Trainer = Callable[[Sequence[Example]], SmartModel]


@dataclass
class HeldOut:
    """Held-out predictions of every labelled row."""

    paths: list[str]  # the true path of each row
    ranked: list[list[str]]  # each row's paths, best first (top 3)
    top_probability: np.ndarray  # the model's raw probability of its first path
    folds: list[int]

    @property
    def correct(self) -> np.ndarray:
        return np.array([r[0] == p for r, p in zip(self.ranked, self.paths)])


def held_out_predictions(rows: Sequence[LabelledRow] | None = None, folds: int = FOLDS,
                         train: Trainer = SmartModel.train, *, by_family: bool = False) -> HeldOut:
    """Each row scored by a model trained without its fold; `by_family`: without its whole
    product family (a product line never seen, not only a name never seen)."""
    rows = list(rows if rows is not None else labelled_rows())
    fold = fold_of(rows, folds, by_family=by_family)
    ranked: list[list[str]] = [[] for _ in rows]
    top = np.zeros(len(rows))
    for k in range(folds):
        test = [i for i, f in enumerate(fold) if f == k]
        model = train([rows[i].example for i, f in enumerate(fold) if f != k])
        p = model.probabilities([rows[i].example.record for i in test])
        order = np.argsort(-p, axis=1)[:, :3]
        for i, row_p, row_order in zip(test, p, order):
            ranked[i] = [model.paths[j] for j in row_order]
            top[i] = row_p[row_order[0]]
    return HeldOut([r.example.path for r in rows], ranked, top, fold)


@lru_cache(maxsize=1)
def labelled_calibrator() -> Calibrator:
    """The calibration curve of the model trained on the whole labelled set, fitted on the
    held-out predictions of the labelled set (computed once per process)."""
    held = held_out_predictions()
    return Calibrator.fit(held.top_probability, held.correct)


def cross_fitted_confidence(held: HeldOut) -> np.ndarray:
    """Each row's calibrated confidence, from a curve fitted on the other folds only."""
    folds = np.array(held.folds)
    correct = held.correct
    confidence = np.zeros(len(folds))
    for k in sorted(set(held.folds)):
        mask = folds == k
        curve = Calibrator.fit(held.top_probability[~mask], correct[~mask])
        confidence[mask] = curve(held.top_probability[mask])
    return confidence


@dataclass
class Evaluation:
    rows: int
    families: int
    folds: int
    top1: float
    top3: float
    threshold: float
    precision: float  # among held-out rows with confidence >= threshold, the share right
    coverage: float  # the share of held-out rows with confidence >= threshold
    family_top1: float = 0.0  # top-1 with whole product families held out (product lines never seen)
    per_path: dict[str, tuple[int, int, list[tuple[str, int]]]] = field(default_factory=dict)  # n, right, confusions
    thresholds: list[tuple[float, float, float]] = field(default_factory=list)  # threshold, precision, coverage
    suggest_seconds: float | None = None
    suggest_count: int = 0


def precision_coverage(confidence: np.ndarray, correct: np.ndarray, threshold: float) -> tuple[float, float]:
    above = confidence >= threshold
    covered = int(above.sum())
    precision = float(correct[above].mean()) if covered else 1.0
    return precision, covered / len(confidence)


def evaluate(threshold: float, *, timing_records: Sequence[dict] | None = None) -> Evaluation:
    rows = labelled_rows()
    held = held_out_predictions(rows)
    correct = held.correct
    confidence = cross_fitted_confidence(held)
    precision, coverage = precision_coverage(confidence, correct, threshold)
    per_path: dict[str, tuple[int, int, list[tuple[str, int]]]] = {}
    for path in sorted(set(held.paths)):
        mine = [i for i, p in enumerate(held.paths) if p == path]
        wrong = Counter(held.ranked[i][0] for i in mine if not correct[i])
        per_path[path] = (len(mine), int(correct[mine].sum()), wrong.most_common(2))
    result = Evaluation(
        rows=len(rows), families=len({r.family for r in rows}), folds=len(set(held.folds)),
        top1=float(correct.mean()),
        top3=float(np.mean([p in r for p, r in zip(held.paths, held.ranked)])),
        threshold=threshold, precision=precision, coverage=coverage, per_path=per_path,
        family_top1=float(held_out_predictions(rows, by_family=True).correct.mean()),
        thresholds=[(t, *precision_coverage(confidence, correct, t)) for t in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)],
    )
    if timing_records is not None:
        model = SmartModel.train([r.example for r in rows], labelled_calibrator())
        started = time.perf_counter()
        for record in timing_records:
            model.suggest(record)
        result.suggest_seconds = time.perf_counter() - started
        result.suggest_count = len(timing_records)
    return result
