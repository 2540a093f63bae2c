"""The smart-mapping model: multinomial logistic regression over TF-IDF product features.

Trained at run time (a few seconds on the labelled set plus a tenant's confirmed
mappings), so nothing is downloaded or stored: each mapping version teaches the next
suggestion. `SmartModel.suggest` is the engine's `MappingContext.suggest`: a product record ->
(category path, calibrated confidence).

Three things beyond the labelled rows: the category tree's own words (each path's name and
gloss) are learnt as low-weight examples; every example is learnt a second time without the
first word of its name, most often the vendor ("Bitwarden Teams per user" -> "Teams per
user"), so the model cannot lean on a brand alone; and siblings share strength: a path's
score is its own weights plus a share of its top-level category's ("Security"), whose
gradient is the sum of its children's. Both blocks are folded into one weight matrix after
training, so suggesting costs the same as a flat model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hg_pipeline.mapping.smart.calibration import Calibrator
from hg_pipeline.mapping.smart.features import Vectorizer, product_features, tree_glosses

EPOCHS = 20  # passes over the examples (chosen by cross-validation)
LEARNING_RATE = 1.0
PARENT_SHARE = 0.5  # rate of the top-level category block relative to the paths' own (cross-validated)
TREE_WORDS_WEIGHT = 2.0  # each of the tree's words for a path counts as two labelled rows (cross-validated)
BRANDLESS_WEIGHT = 1.0  # weight of an example's copy without its name's first word (relative to the example)


@dataclass(frozen=True)
class Example:
    record: dict  # a normalized product record (name, sku, category, subcategory, product_class, ...)
    path: str  # its HighGround category path
    weight: float = 1.0


@dataclass(frozen=True)
class Suggestion:
    path: str
    confidence: float  # calibrated: the chance that `path` is right
    alternatives: tuple[tuple[str, float], ...]  # the next best paths with the model's probability


def fit_softmax(rows: Sequence[tuple[np.ndarray, np.ndarray]], labels: Sequence[int], weights: Sequence[float],
                features: int, classes: int, *, parents: Sequence[int] | None = None, epochs: int = EPOCHS,
                rate: float = LEARNING_RATE, parent_share: float = PARENT_SHARE, seed: int = 0) -> np.ndarray:
    """Multinomial logistic regression by averaged stochastic gradient descent: (features + 1)
    x classes weights, the last row the bias. Averaging the weights of every step regularizes
    as well as an L2 penalty did here, at a twentieth of the time of L-BFGS.

    `parents` (each class's top-level category, 0..n-1): the logit of a class is its own weights
    plus its parent's block, learnt at `parent_share` of the rate from the sum of its children's
    gradients; the returned matrix has the parent blocks folded in."""
    parent = np.asarray(parents if parents is not None else np.zeros(classes), dtype=np.int64)
    tops = int(parent.max()) + 1 if parents is not None and parent_share else 0
    # one matrix: the classes' own columns, then one column per top-level category
    w = np.zeros((features + 1, classes + tops))
    total = np.zeros_like(w)  # sum over steps of step * update, for the running average
    gradient = np.zeros(classes + tops)
    rng = np.random.default_rng(seed)
    step = 1
    for _ in range(epochs):
        for i in rng.permutation(len(rows)):
            idx, values = rows[i]
            scores = values @ w[idx] + w[-1]
            logits = scores[:classes] + scores[classes:][parent] if tops else scores
            own = softmax(logits)
            own[labels[i]] -= 1.0
            own *= rate * weights[i]
            gradient[:classes] = own
            if tops:
                gradient[classes:] = np.bincount(parent, weights=own, minlength=tops) * parent_share
            update = np.outer(values, gradient)
            w[idx] -= update
            w[-1] -= gradient
            total[idx] -= step * update
            total[-1] -= step * gradient
            step += 1
    w = w - total / step
    return w[:, :classes] + w[:, classes:][:, parent] if tops else w


def tree_examples(paths: Sequence[str]) -> list[Example]:
    """The category tree's own words for `paths` as examples (names only): each path's
    subcategory name (a custom path's too) and the items of its gloss in categories.yaml."""
    glosses = tree_glosses()
    examples = []
    for path in paths:
        for text in glosses.get(path, (path.rpartition("/")[2],)):
            examples.append(Example({"name": text}, path, TREE_WORDS_WEIGHT))
    return examples


def brandless_examples(examples: Sequence[Example]) -> list[Example]:
    """Each example whose name has two words or more, again without its first word: that word
    is most often the vendor ("Bitwarden Teams per user" -> "Teams per user", the SKU and PSA
    category kept). Learning both, the model cannot lean on a brand alone: the rest of a name
    (edition, unit, product words) must carry the path too. Cross-validated: +0.5 points top-1
    on names never seen, product lines never seen unchanged within noise; dropping a random
    word instead gains nothing (docs/decisions.md, fourth follow-up)."""
    out = []
    for e in examples:
        name = e.record.get("name")
        tokens = str(name).split() if name else []
        if len(tokens) >= 2:
            out.append(Example({**e.record, "name": " ".join(tokens[1:])}, e.path, e.weight * BRANDLESS_WEIGHT))
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=-1, keepdims=True)


class SmartModel:
    """Category paths for product records, with a calibrated confidence."""

    def __init__(self, vectorizer: Vectorizer, weights: np.ndarray, paths: list[str],
                 calibrator: Calibrator | None = None) -> None:
        self.vectorizer = vectorizer
        self.weights = weights  # (features + 1) x paths, the last row the bias
        self.paths = paths
        self.calibrator = calibrator or Calibrator.identity()

    @classmethod
    def train(cls, examples: Sequence[Example], calibrator: Calibrator | None = None) -> SmartModel:
        if not examples:
            raise ValueError("smart mapping needs at least one labelled example")
        paths = sorted({e.path for e in examples})
        examples = [*examples, *brandless_examples(examples), *tree_examples(paths)]
        features = [product_features(e.record) for e in examples]
        vectorizer = Vectorizer(features)
        column = {path: i for i, path in enumerate(paths)}
        tops = sorted({path.partition("/")[0] for path in paths})
        parents = [tops.index(path.partition("/")[0]) for path in paths]
        w = fit_softmax([vectorizer.row(f) for f in features], [column[e.path] for e in examples],
                        [e.weight for e in examples], vectorizer.size, len(paths), parents=parents)
        return cls(vectorizer, w, paths, calibrator)

    def probabilities(self, records: Sequence[dict]) -> np.ndarray:
        """records x paths: the model's raw (uncalibrated) probabilities."""
        return np.array([self._probability_row(r) for r in records]).reshape(len(records), len(self.paths))

    def _probability_row(self, record: dict) -> np.ndarray:
        idx, values = self.vectorizer.row(product_features(record))
        return softmax(values @ self.weights[idx] + self.weights[-1])

    def suggest(self, record: dict) -> tuple[str, float] | None:
        """The engine's hook: the best path and its calibrated confidence."""
        p = self._probability_row(record)
        best = int(p.argmax())
        return self.paths[best], float(self.calibrator(p[best]))

    def suggest_many(self, records: Sequence[dict], alternatives: int = 2) -> list[Suggestion]:
        if not records:
            return []
        p = self.probabilities(records)
        order = np.argsort(-p, axis=1)[:, : alternatives + 1]
        out = []
        for row, ranked in zip(p, order):
            confidence = float(self.calibrator(row[ranked[0]]))
            # alternatives keep the model's probability, never more than the top one leaves
            out.append(Suggestion(self.paths[ranked[0]], confidence,
                                  tuple((self.paths[i], min(float(row[i]), 1.0 - confidence)) for i in ranked[1:])))
        return out
