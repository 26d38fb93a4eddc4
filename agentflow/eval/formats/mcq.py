"""Multiple-choice sets (``mcq``, ``halueval_mcq``): a question, its choices, the right one.

``mcq`` reads your own JSON Lines file, one item a line:

.. code-block:: json

    {"id": "geo-1", "question": "What is the capital of France?", "choices": ["Berlin", "Paris", "Rome"],
     "answer": "B"}

- ``question``: the question (required); ``context``: a passage that goes before it (optional);
- ``choices``: two to 26 distinct strings (required), lettered A, B, C, ... in order;
- ``answer``: the right choice as its letter (``"B"``), its 0-based index (``1``) or its text (``"Paris"``);
- ``id``, ``split`` (what ``--split`` selects) and ``metadata`` are optional; anything else is an error.

``halueval_mcq`` reads HaluEval QA (``../shared/data/halueval_qa``) as two-choice items: which of the row's
right and hallucinated answers the knowledge supports (the order seeded per row, so the right one is A about
half of the time).

Either is scored by :mod:`agentflow.eval.multiple_choice`: the log-likelihood of each choice after the
question (a model on agentflow's model server or vLLM), or the letter a chat model answers.
"""

from __future__ import annotations

import random
import string
from pathlib import Path
from typing import Any

from agentflow.eval.formats.base import Dataset, DatasetError, Gold, Item, find_file, read_jsonl, text_field

FIELDS = ("id", "question", "choices", "answer", "context", "split", "metadata")
LETTERS = string.ascii_uppercase


def choice_index(answer: Any, choices: list[str], where: str) -> int:
    """The right choice's index from a letter, a 0-based index or the choice's text."""
    if isinstance(answer, bool):
        answer = None
    if isinstance(answer, int) and 0 <= answer < len(choices):
        return answer
    if isinstance(answer, str):
        text = answer.strip()
        if len(text) == 1 and text.upper() in LETTERS[: len(choices)]:
            return LETTERS.index(text.upper())
        if text in choices:
            return choices.index(text)
    raise DatasetError(f"{where}: 'answer' must be a letter A-{LETTERS[len(choices) - 1]}, an index 0-"
                       f"{len(choices) - 1} or one of the choices' texts, got {answer!r}")


def mcq_item(row: dict[str, Any], where: str, default_id: str) -> Item:
    """One item from a row of the ``mcq`` format (see the module docstring)."""
    unknown = sorted(set(row) - set(FIELDS))
    if unknown:
        raise DatasetError(f"{where}: unknown field(s) {unknown}; fields: {', '.join(FIELDS)}")
    question = text_field(row, "question", where)
    choices = row.get("choices")
    if (not isinstance(choices, list) or not 2 <= len(choices) <= len(LETTERS)
            or not all(isinstance(c, str) and c.strip() for c in choices)):
        raise DatasetError(f"{where}: 'choices' must be a list of 2 to 26 non-empty strings, got {choices!r}")
    if len(set(choices)) != len(choices):
        raise DatasetError(f"{where}: 'choices' has the same text twice: {choices!r}")
    right = choice_index(row.get("answer"), choices, where)
    context = row.get("context")
    if context is not None and not isinstance(context, str):
        raise DatasetError(f"{where}: 'context' must be a string, got {context!r}")
    inputs: dict[str, Any] = {"question": question, "choices": list(choices), "answer_index": right}
    if context:
        inputs["context"] = context
    return Item(id=str(row.get("id") or default_id), inputs=inputs, gold=Gold(answers=(choices[right],)),
                context=(context,) if context else ())


def load_mcq(path: Path, split: str, work_dir: Path) -> Dataset:
    """Every row of the file (with ``--split``, the rows whose ``split`` field is that name)."""
    if path.is_dir():
        raise DatasetError(f"format 'mcq' reads one .jsonl file; {path} is a folder")
    items = []
    for line_no, row in read_jsonl(path):
        if split != "all" and row.get("split") != split:
            continue
        items.append(mcq_item(row, f"{path}:{line_no}", str(line_no)))
    if not items:
        raise DatasetError(f"{path}: no items" + ("" if split == "all" else f" with split {split!r}"))
    return Dataset(format="mcq", source=path, split=split, items=items,
                   description="multiple-choice questions (question, choices, answer)")


def load_halueval_mcq(folder: Path, split: str, work_dir: Path) -> Dataset:
    """One two-choice item per HaluEval QA row: the answer the knowledge supports, against the invented one."""
    path = find_file(folder, "qa_one-turn_data.json", "halueval_mcq", "the halueval_qa folder")
    items: list[Item] = []
    for line_no, row in read_jsonl(path):
        where = f"{path}:{line_no}"
        right, wrong = text_field(row, "right_answer", where), text_field(row, "hallucinated_answer", where)
        choices = [right, wrong] if random.Random(line_no).random() < 0.5 else [wrong, right]
        if right == wrong:
            continue
        items.append(mcq_item({"question": text_field(row, "question", where), "choices": choices,
                               "answer": choices.index(right), "context": text_field(row, "knowledge", where)},
                              where, f"{line_no}"))
    return Dataset(format="halueval_mcq", source=folder, split=split, items=items,
                   description="HaluEval QA as two-choice items: which answer the knowledge supports",
                   notes=("the right answer's position is seeded per row",))


def choices_of(item: Item) -> tuple[list[str], int]:
    """An mcq item's choices and the right one's index; :class:`DatasetError` for other items."""
    choices, right = item.inputs.get("choices"), item.inputs.get("answer_index")
    if not isinstance(choices, list) or not isinstance(right, int):
        raise DatasetError(f"item {item.id!r} is not a multiple-choice item (it has no 'choices' and 'answer')")
    return choices, right
