"""HaluEval QA (``halueval``): does a checker accept the right answer and flag the invented one?

Each of the 500 rows (knowledge, question, right answer, hallucinated answer) gives two items,
``<row>-right`` (gold ``faithful: true``) and ``<row>-hallucinated`` (``faithful: false``), in
that order. Their inputs are ``question``, ``answer`` (the candidate) and ``context`` (the
knowledge), so the workflow is a checker: it must declare those inputs and run a
``faithfulness`` check (``examples/evaluate/check_answer.yaml`` is one). Hallucination detection
accuracy compares the check's pass/fail with the gold label.

The file is named .json but holds one JSON object per line.
"""

from __future__ import annotations

from pathlib import Path

from agentflow.eval.formats.base import Dataset, Gold, Item, find_file, read_jsonl, text_field


def load_halueval(folder: Path, split: str, work_dir: Path) -> Dataset:
    """Two items per row: the right answer and the hallucinated one, with the row's knowledge."""
    path = find_file(folder, "qa_one-turn_data.json", "halueval", "the halueval_qa folder")
    items: list[Item] = []
    for line_no, row in read_jsonl(path):
        where = f"{path}:{line_no}"
        question = text_field(row, "question", where)
        knowledge = text_field(row, "knowledge", where)
        for kind, field, faithful in (("right", "right_answer", True),
                                      ("hallucinated", "hallucinated_answer", False)):
            items.append(Item(
                id=f"{line_no}-{kind}",
                inputs={"question": question, "answer": text_field(row, field, where),
                        "context": knowledge},
                gold=Gold(faithful=faithful),
                context=(knowledge,),
            ))
    return Dataset(
        format="halueval", source=folder, split=split, items=items,
        description="HaluEval QA (Li et al. 2023): right and hallucinated answers to check",
        needs_inputs=("question", "answer", "context"),
        notes=("two items per row (right, hallucinated); the workflow checks the given answer",),
    )
