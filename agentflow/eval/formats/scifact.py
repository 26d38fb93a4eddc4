"""SciFact (``scifact``): scientific claims as queries over 5,183 abstracts.

Each item is a claim with evidence (the retrieval task of BEIR and ``benchmarks/retrieval.py``:
188 dev claims); its gold documents are the evidence abstracts. SciFact has no free-text answers,
so it scores retrieval (recall@k, nDCG@10) and the checks, not answers. The corpus is
``corpus.jsonl`` as it is (``abstract`` is a list of sentences, joined for indexing; ``doc_id``
becomes the record id). The ``knowledge`` label is described with train claims, never scored.
"""

from __future__ import annotations

from pathlib import Path

from agentflow.eval.formats.base import (
    KNOWLEDGE,
    Corpus,
    Dataset,
    DatasetError,
    Gold,
    Item,
    LabelDefaults,
    Routing,
    find_file,
    read_jsonl,
    text_field,
)
from agentflow.eval.formats.qa import QA_THRESHOLD

ROUTE_EXAMPLES = 64
CORPUS_FIELDS = {"text": "abstract", "title": "title", "id": "doc_id"}


def _claims(path: Path) -> list[Item]:
    items: list[Item] = []
    for line_no, row in read_jsonl(path):
        where = f"{path}:{line_no}"
        evidence = row.get("evidence") or {}
        if not isinstance(evidence, dict):
            raise DatasetError(f"{where}: field 'evidence' must be an object of doc id -> sets")
        if not evidence:
            continue
        items.append(Item(
            id=str(row.get("id", line_no)),
            inputs={"question": text_field(row, "claim", where)},
            gold=Gold(doc_ids=tuple(str(k) for k in evidence), route=KNOWLEDGE),
        ))
    return items


def load_scifact(folder: Path, split: str, work_dir: Path) -> Dataset:
    """Claims with evidence of ``split`` (``dev`` or ``train``); the test claims carry no labels."""
    hint = "the scifact folder"
    items = _claims(find_file(folder, f"claims_{split}.jsonl", "scifact", hint))
    route_pool = _claims(find_file(folder, "claims_train.jsonl", "scifact", hint))
    corpus = find_file(folder, "corpus.jsonl", "scifact", hint)
    with corpus.open(encoding="utf-8") as handle:
        documents = sum(1 for line in handle if line.strip())
    if split == "train":  # describe the label with claims that are not scored
        route_pool, items = items[:ROUTE_EXAMPLES], items[ROUTE_EXAMPLES:]
    examples = tuple(i.question for i in route_pool[:ROUTE_EXAMPLES])
    return Dataset(
        format="scifact", source=folder, split=split, items=items,
        description="SciFact (Wadden et al. 2020): scientific claims, evidence abstracts",
        corpus=Corpus(path=corpus, field_map=CORPUS_FIELDS, documents=documents),
        routing=Routing(labels={KNOWLEDGE: LabelDefaults(
            description="a scientific claim that biomedical research abstracts support or refute",
            examples=examples)}, threshold=QA_THRESHOLD),
        notes=("claims are the questions; only claims with evidence are items (no answers: "
               "retrieval and checks are scored)",
               f"{len(examples)} train claims describe the knowledge label"),
    )
