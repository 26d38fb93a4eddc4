"""CLINC150 (``clinc150``): intent routing with out-of-scope queries.

Each item is a query whose gold route is its intent (150 of them, 10 domains), or ``oos`` for an
out-of-scope query. The set is meant for a workflow whose ``classify`` node routes requests: the
node's labels are replaced by the 150 intents, each described by its domain and name and by
:data:`EXAMPLES_PER_INTENT` queries of the train split, and its ``out_of_scope`` label becomes
``oos``. The threshold is left to the classifier.

Splits: ``val`` (3,000 in-scope + 100 out-of-scope) and ``test`` (4,500 + 1,000), interleaved so
a ``--limit`` keeps the proportion; ``train`` (15,000 + 100) is what ``agentflow tune`` learns from
(its first queries are also the label examples).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentflow.eval.formats.base import (
    Dataset,
    DatasetError,
    Gold,
    Item,
    LabelDefaults,
    Routing,
    find_file,
    interleave,
    read_json,
)

OUT_OF_SCOPE = "oos"
EXAMPLES_PER_INTENT = 10
"""Train queries per intent: the classify prompt lists every label with its examples, and 150
intents with 10 each (about 24k tokens) stay inside a 32k-token window, where 30 each (68k) do
not. The offline classifier uses its centroid mode with so few (0.917 intent accuracy with all
train queries as centroids, benchmarks/models.py)."""


def _pairs(data: dict[str, Any], key: str, path: Path) -> list[tuple[str, str]]:
    rows = data.get(key)
    if not isinstance(rows, list):
        raise DatasetError(f"{path}: no split {key!r}; splits in the file: {', '.join(data)}")
    out: list[tuple[str, str]] = []
    for index, row in enumerate(rows):
        if not (isinstance(row, list) and len(row) == 2 and all(isinstance(x, str) for x in row)):
            raise DatasetError(f"{path} ({key}[{index}]): expected [query, intent], got {row!r}")
        out.append((row[0], row[1]))
    return out


def load_clinc150(folder: Path, split: str, work_dir: Path) -> Dataset:
    """Queries of ``split`` and their intents; the intents' train queries as label examples."""
    path = find_file(folder, "data_full.json", "clinc150", "the clinc150 folder")
    data = read_json(path)
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a JSON object of split -> [query, intent] pairs")
    domains = read_json(find_file(folder, "domains.json", "clinc150", "the clinc150 folder"))
    domain_of = {intent: domain for domain, intents in domains.items() for intent in intents}

    def items(key: str) -> list[Item]:
        return [Item(id=f"{key}-{i}", inputs={"question": q}, gold=Gold(route=intent))
                for i, (q, intent) in enumerate(_pairs(data, key, path))]

    examples: dict[str, list[str]] = {}
    for query, intent in _pairs(data, "train", path):
        bucket = examples.setdefault(intent, [])
        if len(bucket) < EXAMPLES_PER_INTENT:
            bucket.append(query)
    labels = {
        intent: LabelDefaults(
            description=f"{domain_of.get(intent, 'other').replace('_', ' ')}: "
                        f"{intent.replace('_', ' ')}",
            examples=tuple(queries))
        for intent, queries in sorted(examples.items())
    }
    return Dataset(
        format="clinc150", source=folder, split=split,
        items=interleave(items(split), items(f"oos_{split}")),
        description="CLINC150 (Larson et al. 2019): 150 intents in 10 domains, plus out-of-scope",
        routing=Routing(labels=labels, replace=True, out_of_scope=OUT_OF_SCOPE),
        notes=(f"the classify node's labels become the 150 intents ({EXAMPLES_PER_INTENT} train "
               f"queries each); its out-of-scope label becomes {OUT_OF_SCOPE!r}",),
    )
