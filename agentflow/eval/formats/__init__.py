"""Dataset formats: one adapter per set in ``../shared/data`` and a plain ``jsonl`` for your own.

.. code-block:: python

    from agentflow.eval.formats import load_dataset

    data = load_dataset("../shared/data/clapnq_dev", "clapnq", split="all", limit=20)
    data.items[0].inputs      # {"question": "..."}
    data.items[0].gold        # Gold(answers=(...), doc_ids=(...), answerable=True, route="knowledge")
    data.corpus               # the set's passages: the workflow's knowledge collection

``--dataset`` is the set's folder (a file in it is accepted too) or, for ``jsonl``, the file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from agentflow.errors import did_you_mean
from agentflow.eval.formats.base import (
    KNOWLEDGE,
    Corpus,
    Dataset,
    DatasetError,
    Gold,
    Item,
    LabelDefaults,
    Routing,
)

Loader = Callable[[Path, str, Path], Dataset]


@dataclass(frozen=True, slots=True)
class Format:
    """A registered format: its splits (the first is the default) and its adapter."""

    name: str
    summary: str
    splits: tuple[str, ...]
    loader: Loader
    folder: bool = True
    """Whether ``--dataset`` names a folder (a file inside it is taken as its folder)."""


def _formats() -> dict[str, Format]:
    from agentflow.eval.formats import clinc150, halueval, jsonl, mcq, multihop, qa, scifact

    listed = [
        Format("clapnq", "CLAP NQ dev: long answers, answerable and unanswerable",
               ("all", "answerable", "unanswerable"), qa.load_clapnq),
        Format("nq_open_oracle", "NQ-Open: short answers, one gold passage", ("all",),
               qa.load_nq_open_oracle),
        Format("hotpotqa", "HotpotQA: multi-hop, 2 gold passages", ("train",),
               multihop.load_hotpotqa),
        Format("musique", "MuSiQue: 2-4 hop questions", ("train",), multihop.load_musique),
        Format("scifact", "SciFact: claims, evidence abstracts (retrieval)", ("dev", "train"),
               scifact.load_scifact),
        Format("clinc150", "CLINC150: intent routing with out-of-scope", ("val", "test", "train"),
               clinc150.load_clinc150),
        Format("halueval", "HaluEval QA: right vs hallucinated answers (checkers)", ("all",),
               halueval.load_halueval),
        Format("jsonl", "your own data, one JSON object a line", ("all",), jsonl.load_jsonl,
               folder=False),
        Format("mcq", "multiple choice: question, choices, answer (JSON Lines; scored by model)",
               ("all",), mcq.load_mcq, folder=False),
        Format("halueval_mcq", "HaluEval QA as two-choice items: which answer the knowledge supports",
               ("all",), mcq.load_halueval_mcq),
    ]
    return {f.name: f for f in listed}


FORMATS: dict[str, Format] = _formats()


def get_format(name: str) -> Format:
    """The format called ``name``, or a :class:`DatasetError` listing the valid ones."""
    found = FORMATS.get(name)
    if found is None:
        raise DatasetError(f"unknown dataset format {name!r}.{did_you_mean(name, FORMATS)} "
                           f"Formats: {', '.join(FORMATS)}")
    return found


def load_dataset(
    path: str | Path,
    fmt: str,
    *,
    split: str | None = None,
    limit: int | None = None,
    work_dir: str | Path = Path(".agentflow") / "eval" / "corpora",
) -> Dataset:
    """Read ``split`` (the format's default when None) of the set at ``path``; the first ``limit``
    items. Derived corpus files go under ``work_dir``."""
    spec = get_format(fmt)
    source = Path(path)
    if not source.exists():
        raise DatasetError(f"no such dataset file or folder: {str(source)!r}")
    if spec.folder and source.is_file():
        source = source.parent
    chosen = split or spec.splits[0]
    if fmt not in ("jsonl", "mcq") and chosen not in spec.splits:
        raise DatasetError(f"format {fmt!r} has no split {chosen!r}."
                           f"{did_you_mean(chosen, spec.splits)} Splits: {', '.join(spec.splits)}")
    dataset = spec.loader(source, chosen, Path(work_dir))
    if limit is not None:
        if limit < 1:
            raise DatasetError(f"--limit must be at least 1, got {limit}")
        dataset = replace(dataset, items=dataset.items[:limit])
    return dataset


__all__ = ["FORMATS", "KNOWLEDGE", "Corpus", "Dataset", "DatasetError", "Format", "Gold", "Item",
           "LabelDefaults", "Routing", "get_format", "load_dataset"]
