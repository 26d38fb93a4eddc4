"""The offline classifier: embedding similarity to labelled examples and label descriptions.

Not a language model. Each label gets a prototype in embedding space. With a few examples per
label (what a ``classify`` node lists), the score of a label is the mean of the input's cosine
similarity to the label's centroid (its examples and description) and to its nearest example. With
many examples (``fit_min_examples`` or more for every label, a training set), the prototypes are
refined discriminatively: a softmax layer initialised at the centroids and trained with Adam, whose
logits divided by the temperature are again similarities. An input whose best score is under the
threshold is out of scope; :meth:`EmbeddingClassifier.calibrate` sets the threshold that keeps a
chosen share of in-scope inputs.

A label may also bring passages: document text near the input, for a label whose meaning is a
collection's content (a ``classify`` label ``from_collection``). The label then scores the higher of
its prototype score and the input's best cosine similarity to a passage sentence, and
:data:`PASSAGE_THRESHOLD` applies: measured on a dev split (``benchmarks/routing.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from agentflow.errors import ModelError
from agentflow.models.embeddings.base import LocalEmbedder
from agentflow.models.types import Label

DEFAULT_THRESHOLD = 0.35
"""Out-of-scope threshold of the few-example (centroid) mode when none is given or calibrated."""

PASSAGE_THRESHOLD = 0.35
"""Out-of-scope threshold when a label scores passages (``from_collection``), from the dev split
of ``benchmarks/routing.py`` (docs/benchmarks.md): the best balanced route accuracy."""


@dataclass(frozen=True, slots=True)
class Prediction:
    """The best label (or ``None`` when out of scope), its score, and the top scores."""

    label: str | None
    score: float
    top: tuple[tuple[str, float], ...]
    nearest: dict[str, str] = field(default_factory=dict)
    """Label -> the example, description or passage sentence the input came closest to."""


class EmbeddingClassifier:
    """Classify texts by similarity to labelled examples; see the module docstring."""

    def __init__(
        self,
        encoder: LocalEmbedder,
        *,
        fit_min_examples: int = 20,
        temperature: float = 20.0,
        epochs: int = 30,
        learning_rate: float = 0.01,
    ) -> None:
        self.encoder = encoder
        self.fit_min_examples = fit_min_examples
        self.temperature = temperature
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.labels: list[str] = []
        self.threshold: float | None = None
        self.mode: str = "unfitted"
        self._centroids = np.zeros((0, 0), dtype=np.float32)
        self._examples = np.zeros((0, 0), dtype=np.float32)
        self._example_label = np.zeros(0, dtype=np.int64)
        self._texts: list[str] = []
        self._weights: np.ndarray | None = None
        self._bias: np.ndarray | None = None
        self._fitted_default = DEFAULT_THRESHOLD

    def fit(self, labels: Sequence[Label]) -> EmbeddingClassifier:
        """Learn prototypes from each label's examples and description."""
        if not labels:
            raise ModelError("the offline classifier needs at least one label")
        texts: list[str] = []
        owner: list[int] = []
        for index, label in enumerate(labels):
            items = list(label.examples) + ([label.description] if label.description else [])
            if not items:
                items = [label.name.replace("_", " ")]
            texts += items
            owner += [index] * len(items)
        vectors = self.encoder.encode(texts)
        self.fit_vectors([label.name for label in labels], vectors, np.asarray(owner))
        self._texts = texts
        return self

    def fit_vectors(self, labels: Sequence[str], vectors: np.ndarray, owner: np.ndarray) -> EmbeddingClassifier:
        """Fit from precomputed unit-length vectors; ``owner[i]`` is the label index of row ``i``."""
        self.labels = list(labels)
        k = len(self.labels)
        counts = np.bincount(owner, minlength=k)
        if (counts == 0).any():
            missing = [self.labels[i] for i in np.flatnonzero(counts == 0)]
            raise ModelError(f"no examples for label(s) {missing}")
        sums = np.zeros((k, vectors.shape[1]), dtype=np.float32)
        np.add.at(sums, owner, vectors)
        self._centroids = _unit(sums)
        self._examples = vectors.astype(np.float32)
        self._example_label = owner
        self._texts = []
        self._weights = self._bias = None
        self.mode = "centroid"
        if k > 1 and counts.min() >= self.fit_min_examples:
            self._fit_softmax(vectors.astype(np.float32), owner)
            self.mode = "fitted"
            # training inputs score higher than new ones, hence a low quantile as the default
            self._fitted_default = float(np.quantile(self.scores(vectors).max(axis=1), 0.01))
        return self

    def _fit_softmax(self, x: np.ndarray, y: np.ndarray) -> None:
        # Full-batch Adam from the centroids: deterministic, and a few seconds for 15k examples.
        t = self.temperature
        w = self._centroids.T.copy()
        b = np.zeros(w.shape[1], dtype=np.float32)
        onehot = np.eye(w.shape[1], dtype=np.float32)[y]
        moments = [np.zeros_like(w), np.zeros_like(b), np.zeros_like(w), np.zeros_like(b)]
        for step in range(1, self.epochs + 1):
            grad_logits = (_softmax(t * (x @ w) + b) - onehot) / len(x)
            grads = (t * (x.T @ grad_logits) + 1e-4 * w, grad_logits.sum(0))
            for i, (param, grad) in enumerate(zip((w, b), grads, strict=True)):
                m, v = moments[i], moments[i + 2]
                m *= 0.9
                m += 0.1 * grad
                v *= 0.999
                v += 0.001 * grad * grad
                m_hat = m / (1 - 0.9**step)
                v_hat = v / (1 - 0.999**step)
                param -= self.learning_rate * m_hat / (np.sqrt(v_hat) + 1e-8)
        self._weights, self._bias = w, b / t

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """Similarity of each row to each label's prototype, shape ``(rows, labels)``."""
        if self.mode == "unfitted":
            raise ModelError("the offline classifier is not fitted; call fit() first")
        if self._weights is not None and self._bias is not None:
            return vectors @ self._weights + self._bias
        centroid = vectors @ self._centroids.T
        nearest = np.full_like(centroid, -1.0)
        sims = vectors @ self._examples.T
        for index in range(len(self.labels)):
            nearest[:, index] = sims[:, self._example_label == index].max(axis=1)
        return 0.5 * (centroid + nearest)

    def predict_vectors(
        self,
        vectors: np.ndarray,
        *,
        threshold: float | None = None,
        top: int = 3,
        passages: Mapping[str, Sequence[str]] | None = None,
    ) -> list[Prediction]:
        """Predict from precomputed vectors; ``threshold`` overrides the calibrated one.

        ``passages``: label -> sentences of documents near the inputs; the label scores the
        higher of its prototype score and the best similarity to one of them.
        """
        scores = self.scores(vectors)
        nearest = [self._nearest_examples(row) for row in vectors]
        for name, units in (passages or {}).items():
            if name not in self.labels or not units:
                continue
            index = self.labels.index(name)
            sims = vectors @ self.encoder.encode(list(units)).T
            for row, best in enumerate(sims.argmax(axis=1)):
                if sims[row, best] > scores[row, index]:
                    scores[row, index] = sims[row, best]
                    nearest[row][name] = units[best]
        limit = threshold if threshold is not None else self.threshold
        out = []
        for row, near in zip(scores, nearest, strict=True):
            order = np.argsort(-row, kind="stable")[:top]
            best = float(row[order[0]])
            label = self.labels[order[0]] if limit is None or best >= limit else None
            ranked = tuple((self.labels[i], float(row[i])) for i in order)
            shown = {n: near[n] for n, _ in ranked if n in near}
            out.append(Prediction(label, best, ranked, shown))
        return out

    def _nearest_examples(self, vector: np.ndarray) -> dict[str, str]:
        """Label -> its example (or description) nearest ``vector``, when the texts are known."""
        if not self._texts:
            return {}
        sims = self._examples @ vector
        out: dict[str, str] = {}
        for index, name in enumerate(self.labels):
            mine = np.flatnonzero(self._example_label == index)
            out[name] = self._texts[int(mine[np.argmax(sims[mine])])]
        return out

    def predict(
        self,
        texts: Sequence[str],
        *,
        threshold: float | None = None,
        passages: Mapping[str, Sequence[str]] | None = None,
    ) -> list[Prediction]:
        """Predict the label of each text (``None`` for out of scope); ``passages`` as in
        :meth:`predict_vectors`."""
        return self.predict_vectors(
            self.encoder.encode(texts), threshold=threshold, passages=passages
        )

    def calibrate(self, vectors: np.ndarray, *, retention: float = 0.95) -> float:
        """Set the threshold that keeps ``retention`` of these in-scope inputs; returns it."""
        best = self.scores(vectors).max(axis=1)
        self.threshold = float(np.quantile(best, 1.0 - retention))
        return self.threshold

    def default_threshold(self) -> float:
        """The calibrated threshold, or a default for the mode."""
        if self.threshold is not None:
            return self.threshold
        return DEFAULT_THRESHOLD if self.mode == "centroid" else self._fitted_default


def _unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
