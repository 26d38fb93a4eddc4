"""Your own data (``jsonl``): one JSON object per line.

.. code-block:: json

    {"id": "q1", "question": "How are loops bounded?", "answers": ["max_iterations"],
     "gold_doc_ids": ["docs/loops.md"], "answerable": true, "route": "knowledge"}

Fields (``question`` or ``inputs`` is required):

- ``id``: unique; the line number when absent.
- ``question``: the question; or ``inputs``: an object of workflow inputs (``question`` and any
  other input the workflow declares). Both may be given; ``question`` then joins ``inputs``.
- ``answers``: accepted answers (a string or a list), for exact match, F1 and answer-contains.
- ``gold_doc_ids``: ids of the supporting documents: a .jsonl corpus record's id (its
  ``field_map`` id), or a file's path as chunks name it (relative to the project, e.g.
  ``docs/loops.md``; the end of the path is enough).
- ``answerable``: false when the documents do not answer it (the workflow should abstain).
- ``route``: the label the workflow's ``classify`` node should give.
- ``faithful``: with an ``answer`` input, whether the context supports that answer.
- ``context``: passages (a string or a list) that go with the item.
- ``split``: a name ``--split`` selects on.
- ``metadata``: anything else, kept and ignored.

Other fields are an error (a misspelt ``answer`` for ``answers`` would silently score nothing).
The corpus is the workflow's own ``knowledge`` collection; point it elsewhere with
``--set collections.knowledge.source=...``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentflow.errors import did_you_mean
from agentflow.eval.formats.base import (
    Dataset,
    DatasetError,
    Gold,
    Item,
    read_jsonl,
    string_list,
    text_field,
)

FIELDS = ("id", "question", "inputs", "answers", "gold_doc_ids", "answerable", "route",
          "faithful", "context", "split", "metadata")


def load_jsonl(path: Path, split: str, work_dir: Path) -> Dataset:
    """Every row of the file (with ``--split``, the rows whose ``split`` field is that name)."""
    if path.is_dir():
        raise DatasetError(f"format 'jsonl' reads one .jsonl file; {path} is a folder")
    items: list[Item] = []
    splits: set[str] = set()
    ids: dict[str, int] = {}
    for line_no, row in read_jsonl(path):
        where = f"{path}:{line_no}"
        row_split = row.get("split")
        if row_split is not None:
            splits.add(str(row_split))
        if split != "all" and str(row_split) != split:
            continue
        item = _item(row, where, line_no)
        if item.id in ids:
            raise DatasetError(f"{where}: id {item.id!r} is also the id of line {ids[item.id]}; "
                               "ids must be unique")
        ids[item.id] = line_no
        items.append(item)
    if not items:
        known = f"; splits in the file: {', '.join(sorted(splits))}" if splits else ""
        raise DatasetError(f"{path}: no items" + (f" in split {split!r}{known}"
                                                  if split != "all" else ""))
    return Dataset(format="jsonl", source=path, split=split, items=items,
                   description=f"{path.name} (jsonl)")


def _item(row: dict[str, Any], where: str, line_no: int) -> Item:
    unknown = [k for k in row if k not in FIELDS]
    if unknown:
        raise DatasetError(f"{where}: unknown field {unknown[0]!r}."
                           f"{did_you_mean(unknown[0], FIELDS)} Valid fields: {', '.join(FIELDS)}"
                           " (put anything else under 'metadata')")
    inputs = row.get("inputs") or {}
    if not isinstance(inputs, dict):
        raise DatasetError(f"{where}: field 'inputs' must be an object of workflow inputs")
    inputs = dict(inputs)
    if "question" in row or not inputs:
        inputs["question"] = text_field(row, "question", where)
    return Item(
        id=str(row.get("id", line_no)),
        inputs=inputs,
        gold=Gold(
            answers=string_list(row.get("answers"), "answers", where),
            doc_ids=string_list(row.get("gold_doc_ids"), "gold_doc_ids", where),
            answerable=_flag(row, "answerable", where),
            route=_optional_text(row, "route", where),
            faithful=_flag(row, "faithful", where),
        ),
        context=string_list(row.get("context"), "context", where),
    )


def _flag(row: dict[str, Any], name: str, where: str) -> bool | None:
    value = row.get(name)
    if value is not None and not isinstance(value, bool):
        raise DatasetError(f"{where}: field {name!r} must be true or false, got {value!r}")
    return value


def _optional_text(row: dict[str, Any], name: str, where: str) -> str | None:
    value = row.get(name)
    if value is not None and not isinstance(value, str):
        raise DatasetError(f"{where}: field {name!r} must be a string, got {value!r}")
    return value
