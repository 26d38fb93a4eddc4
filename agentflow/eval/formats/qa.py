"""Open-domain QA sets with a passage corpus: CLAP NQ (``clapnq``) and NQ-Open with its gold
passages (``nq_open_oracle``).

Both ship ``derived_questions.jsonl`` and ``derived_corpus.jsonl`` (``doc_id``, ``title``,
``text``); the corpus file is ingested as it is, its ``doc_id`` becoming each chunk's record id,
which is what ``gold_doc_ids`` name.

Routing: a workflow's ``knowledge`` label is re-described with questions of the set itself. Those
questions are reserved (the last rows of the file; for CLAP NQ the last of each half) and never
scored, so no scored question is its own example. The offline classifier scores open-domain
questions far below its default out-of-scope threshold (0.35; these sets land around 0.1), so the
set lowers it to :data:`QA_THRESHOLD`.
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
    interleave,
    read_jsonl,
    string_list,
    text_field,
)

QA_THRESHOLD = 0.05
"""Offline out-of-scope similarity for open-domain questions (measured: with 64 example questions
it routes 95% of CLAP NQ and NQ-Open questions to ``knowledge``)."""
CORPUS_FIELDS = {"text": "text", "title": "title", "id": "doc_id"}


def qa_routing(examples: list[str], what: str) -> Routing:
    """The ``knowledge`` label re-described for a set: what its documents are, and its questions."""
    return Routing(
        labels={KNOWLEDGE: LabelDefaults(
            description=f"a factual question that {what} answer", examples=tuple(examples))},
        threshold=QA_THRESHOLD,
    )


def _questions(path: Path, fmt: str) -> list[tuple[Item, bool]]:
    """Items and whether each is answerable, in file order."""
    out: list[tuple[Item, bool]] = []
    for line_no, row in read_jsonl(path):
        where = f"{path}:{line_no}"
        answerable = row.get("answerable", True)
        if not isinstance(answerable, bool):
            raise DatasetError(f"{where}: field 'answerable' must be true or false")
        item = Item(
            id=str(row.get("id", line_no)),
            inputs={"question": text_field(row, "question", where)},
            gold=Gold(answers=string_list(row.get("answers"), "answers", where),
                      doc_ids=string_list(row.get("gold_doc_ids"), "gold_doc_ids", where),
                      answerable=answerable, route=KNOWLEDGE),
        )
        out.append((item, answerable))
    if not out:
        raise DatasetError(f"{path}: no questions in the file ({fmt})")
    return out


def _corpus(folder: Path, fmt: str) -> Corpus:
    path = find_file(folder, "derived_corpus.jsonl", fmt, "the set's passages")
    with path.open(encoding="utf-8") as handle:
        documents = sum(1 for line in handle if line.strip())
    return Corpus(path=path, field_map=CORPUS_FIELDS, documents=documents)


CLAPNQ_RESERVED = 32
"""Questions of each half (answerable, unanswerable) kept as label examples, never scored."""


def load_clapnq(folder: Path, split: str, work_dir: Path) -> Dataset:
    """CLAP NQ dev: 300 answerable questions with long-form answers and one gold passage, and 300
    unanswerable ones (a topical passage that does not answer them: the workflow should abstain).

    Splits: ``all`` (the two halves interleaved, so any ``--limit`` keeps both), ``answerable``,
    ``unanswerable``.
    """
    path = find_file(folder, "derived_questions.jsonl", "clapnq", "the clapnq_dev folder")
    rows = _questions(path, "clapnq")
    answerable = [item for item, ok in rows if ok]
    unanswerable = [item for item, ok in rows if not ok]
    n = CLAPNQ_RESERVED
    reserved = answerable[-n:] + unanswerable[-n:]
    answerable, unanswerable = answerable[:-n], unanswerable[:-n]
    items = {"all": interleave(answerable, unanswerable), "answerable": answerable,
             "unanswerable": unanswerable}[split]
    return Dataset(
        format="clapnq", source=folder, split=split, items=items,
        description="CLAP NQ dev (IBM; Natural Questions with long-form answers from one passage)",
        corpus=_corpus(folder, "clapnq"),
        routing=qa_routing([i.question for i in reserved], "Wikipedia passages"),
        notes=(f"the last {n} answerable and last {n} unanswerable questions describe the "
               "knowledge label and are not scored",
               "answers are long-form sentences: token F1 is the answer metric that means "
               "something here, exact match hardly ever holds"),
    )


NQ_RESERVED = 64


def load_nq_open_oracle(folder: Path, split: str, work_dir: Path) -> Dataset:
    """NQ-Open with its gold passage ("Lost in the Middle"): short answers with aliases, one gold
    passage each, a corpus of the 2,600 gold passages."""
    path = find_file(folder, "derived_questions.jsonl", "nq_open_oracle",
                     "the nq_open_oracle folder")
    items = [item for item, _ in _questions(path, "nq_open_oracle")]
    reserved, items = items[-NQ_RESERVED:], items[:-NQ_RESERVED]
    return Dataset(
        format="nq_open_oracle", source=folder, split=split, items=items,
        description="NQ-Open with gold Wikipedia passages (Liu et al., Lost in the Middle)",
        corpus=_corpus(folder, "nq_open_oracle"),
        routing=qa_routing([i.question for i in reserved], "Wikipedia passages"),
        notes=(f"the last {NQ_RESERVED} questions describe the knowledge label and are not "
               "scored",),
    )
