"""What a dataset adapter produces: items with their gold, and the corpus and routing a set brings.

An :class:`Item` is one run of the workflow: the ``inputs`` it gets (``question``, and for a
checker workflow ``answer`` and ``context``) and the :class:`Gold` it is scored against. Every gold
field is optional; a metric is computed only for the items that have what it needs, so one
dataset can carry answers, document ids, answerability, a route and a faithfulness label at once.

A :class:`Dataset` also says what the set brings to the workflow: its own :class:`Corpus` (which
becomes the workflow's ``knowledge`` collection for the evaluation) and :class:`Routing` defaults
(how to describe the label of a ``classify`` node that questions of this set should get).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentflow.errors import InputError

KNOWLEDGE = "knowledge"
"""The route label (and collection name) of questions that the set's documents answer."""

DEFAULT_CHUNKING: Mapping[str, Any] = {"chunker": "sentences", "size": 180, "overlap": 0}
"""How set corpora are chunked: their passages (100-250 words) stay mostly one chunk each, inside
MiniLM's window, so ingestion embeds about one text per passage."""


class DatasetError(InputError):
    """A dataset cannot be read: a missing file, an unknown format or split, a malformed row."""


@dataclass(frozen=True, slots=True)
class Gold:
    """What an item is scored against; empty fields are not scored."""

    answers: tuple[str, ...] = ()
    """Accepted answers (aliases); exact match and F1 take the best of them."""
    doc_ids: tuple[str, ...] = ()
    """Ids of the documents that support the answer, comparable with retrieved chunks' ids."""
    answerable: bool | None = None
    """False for questions the documents do not answer: the workflow should abstain."""
    route: str | None = None
    """The label a ``classify`` node should give."""
    faithful: bool | None = None
    """For a candidate answer given as input: whether the context supports it."""


@dataclass(frozen=True, slots=True)
class Item:
    """One evaluation item: the workflow's inputs and the gold."""

    id: str
    inputs: Mapping[str, Any]
    gold: Gold = Gold()
    context: tuple[str, ...] = ()
    """Passages given with the item (checker sets); scored against when nothing was retrieved."""

    @property
    def question(self) -> str:
        """The item's question (or its first text input), for reports."""
        value = self.inputs.get("question")
        if isinstance(value, str):
            return value
        return next((v for v in self.inputs.values() if isinstance(v, str)), "")


@dataclass(frozen=True, slots=True)
class Corpus:
    """A set's documents: a .jsonl file, which fields hold text, title and id, and the chunking."""

    path: Path
    field_map: Mapping[str, str]
    chunking: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_CHUNKING))
    documents: int = 0


@dataclass(frozen=True, slots=True)
class LabelDefaults:
    """A label's description and examples, as a ``classify`` node's ``labels`` entry takes them."""

    description: str
    examples: tuple[str, ...] = ()

    def as_spec(self) -> dict[str, Any]:
        return {"description": self.description, "examples": list(self.examples)}


@dataclass(frozen=True, slots=True)
class Routing:
    """How a set re-describes the labels of the workflow's ``classify`` node.

    With ``replace`` the set's labels replace the node's (an intent set brings all of its intents);
    otherwise each label the node already has is re-described and the others are kept.
    """

    labels: Mapping[str, LabelDefaults]
    replace: bool = False
    threshold: float | None = None
    """The offline classifier's out-of-scope similarity, where the set needs another one."""
    out_of_scope: str | None = None
    """The label the set uses for out-of-scope inputs (the node's ``out_of_scope`` becomes it)."""


@dataclass(slots=True)
class Dataset:
    """Items of one split of a set, with what the set brings to the workflow."""

    format: str
    source: Path
    split: str
    items: list[Item]
    description: str
    corpus: Corpus | None = None
    routing: Routing | None = None
    needs_inputs: tuple[str, ...] = ()
    """Inputs the workflow must declare for the set to make sense (a checker's ``answer``)."""
    notes: tuple[str, ...] = ()
    """What the adapter decided that a reader of the report should know."""


# reading helpers --------------------------------------------------------------------------------
def find_file(folder: Path, name: str, fmt: str, hint: str) -> Path:
    """``folder/name``, or a :class:`DatasetError` that says what the folder holds."""
    path = folder / name
    if path.is_file():
        return path
    present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    raise DatasetError(
        f"format {fmt!r} expects {name} in {folder} ({hint}); found: "
        f"{', '.join(present) or 'nothing'}"
    )


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-empty line; a bad line names its file and line."""
    from agentflow.retrieval.loaders import jsonl_objects

    return jsonl_objects(path, DatasetError)


def read_json(path: Path) -> Any:
    """A whole JSON file; a syntax error names the file, line and column."""
    try:
        with path.open(encoding="utf-8") as handle:
            return json.load(handle)
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON ({exc.msg})") from None


def text_field(row: Mapping[str, Any], name: str, where: str) -> str:
    """A required non-empty string field of a row."""
    value = row.get(name)
    if not isinstance(value, str) or not value.strip():
        fields = ", ".join(sorted(map(str, row))) or "none"
        raise DatasetError(f"{where}: field {name!r} must be a non-empty string, got "
                           f"{_shown(value)}; fields of the row: {fields}")
    return value


def string_list(value: Any, name: str, where: str) -> tuple[str, ...]:
    """A list of strings (or one string, or ids given as numbers) as a tuple of strings."""
    if value is None:
        return ()
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return (str(value),)
    if isinstance(value, list) and all(isinstance(v, (str, int)) and not isinstance(v, bool)
                                       for v in value):
        return tuple(str(v) for v in value)
    raise DatasetError(f"{where}: field {name!r} must be a list of strings, got {_shown(value)}")


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if value is not None else "nothing"
    return text if len(text) <= 80 else text[:77] + "..."


def interleave(*groups: Sequence[Item]) -> list[Item]:
    """Merge groups so that every prefix holds them in proportion: a ``--limit`` over a split of
    answerable and unanswerable questions (or in-scope and out-of-scope ones) keeps both."""
    keyed = [((i + 0.5) / len(group), g, item)
             for g, group in enumerate(groups) for i, item in enumerate(group)]
    return [item for *_, item in sorted(keyed, key=lambda k: (k[0], k[1]))]


def write_if_changed(path: Path, lines: Sequence[str]) -> None:
    """Write a derived file only when its content differs, so a reused corpus stays unchanged."""
    text = "".join(line + "\n" for line in lines)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
