"""Multi-hop QA sets with 2-4 gold passages a question: HotpotQA (``hotpotqa``) and MuSiQue
(``musique``), the 100-question train subsets HippoRAG ships with their passage corpora.

Their corpora are JSON (HotpotQA: a dict title -> sentences; MuSiQue: a list of title and text),
so each is written once as a derived .jsonl under the evaluation's work folder
(``.agentflow/eval/corpora/<format>/corpus.jsonl``; rewritten only when its content would change,
so the collection built from it is reused). A passage's id is its title (HotpotQA's supporting
facts name titles); MuSiQue titles repeat, so a repeated title gets `` (2)``, `` (3)``...

The last :data:`RESERVED` questions describe the ``knowledge`` label and are not scored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agentflow.eval.formats.base import (
    KNOWLEDGE,
    Corpus,
    Dataset,
    DatasetError,
    Gold,
    Item,
    find_file,
    read_json,
    string_list,
    text_field,
    write_if_changed,
)
from agentflow.eval.formats.qa import qa_routing

RESERVED = 20
CORPUS_FIELDS = {"text": "text", "title": "title", "id": "id"}
FOLDER_HINT = "the hotpotqa_musique folder"


def _list_of_objects(data: Any, path: Path) -> list[dict[str, Any]]:
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DatasetError(f"{path}: expected a JSON list of objects")
    return data


def _write_corpus(work_dir: Path, fmt: str, records: list[dict[str, str]]) -> Corpus:
    path = work_dir / fmt / "corpus.jsonl"
    write_if_changed(path, [json.dumps(r, ensure_ascii=False) for r in records])
    return Corpus(path=path, field_map=CORPUS_FIELDS, documents=len(records))


def load_hotpotqa(folder: Path, split: str, work_dir: Path) -> Dataset:
    """HotpotQA (distractor setting, train subset): bridge and comparison questions, gold passages
    from the supporting facts' titles."""
    path = find_file(folder, "hotpotqa_train.json", "hotpotqa", FOLDER_HINT)
    corpus_path = find_file(folder, "hotpotqa_train_corpus.json", "hotpotqa", FOLDER_HINT)
    items: list[Item] = []
    for index, row in enumerate(_list_of_objects(read_json(path), path)):
        where = f"{path} (question {index}, id {row.get('_id', '?')})"
        facts = row.get("supporting_facts")
        if not isinstance(facts, list) or not all(isinstance(f, list) and f for f in facts):
            raise DatasetError(f"{where}: field 'supporting_facts' must be a list of "
                               "[title, sentence index] pairs")
        titles = tuple(dict.fromkeys(str(f[0]) for f in facts))
        items.append(Item(
            id=str(row.get("_id", index)),
            inputs={"question": text_field(row, "question", where)},
            gold=Gold(answers=(text_field(row, "answer", where),), doc_ids=titles,
                      answerable=True, route=KNOWLEDGE),
        ))
    passages = read_json(corpus_path)
    if not isinstance(passages, dict):
        raise DatasetError(f"{corpus_path}: expected a JSON object of title -> sentences")
    records = [{"id": title, "title": title,
                "text": "".join(s) if isinstance(s, list) else str(s)}
               for title, s in passages.items()]
    return _dataset("hotpotqa", folder, split, items, work_dir, records,
                    "HotpotQA train subset (HippoRAG): multi-hop questions, 2+ gold passages")


def load_musique(folder: Path, split: str, work_dir: Path) -> Dataset:
    """MuSiQue-Ans (train subset): 2-4 hop questions; gold passages are the supporting paragraphs,
    found in the corpus by title and text."""
    path = find_file(folder, "musique_train.json", "musique", FOLDER_HINT)
    corpus_path = find_file(folder, "musique_train_corpus.json", "musique", FOLDER_HINT)
    records, ids = _musique_corpus(_list_of_objects(read_json(corpus_path), corpus_path),
                                   corpus_path)
    items: list[Item] = []
    for index, row in enumerate(_list_of_objects(read_json(path), path)):
        where = f"{path} (question {index}, id {row.get('id', '?')})"
        gold: list[str] = []
        for p in row.get("paragraphs") or []:
            if isinstance(p, dict) and p.get("is_supporting"):
                key = (str(p.get("title", "")), str(p.get("paragraph_text", "")))
                if key not in ids:
                    raise DatasetError(f"{where}: supporting paragraph {key[0]!r} is not in "
                                       f"{corpus_path.name}")
                gold.append(ids[key])
        answers = (text_field(row, "answer", where),
                   *string_list(row.get("answer_aliases"), "answer_aliases", where))
        items.append(Item(
            id=str(row.get("id", index)),
            inputs={"question": text_field(row, "question", where)},
            gold=Gold(answers=answers, doc_ids=tuple(dict.fromkeys(gold)),
                      answerable=bool(row.get("answerable", True)), route=KNOWLEDGE),
        ))
    return _dataset("musique", folder, split, items, work_dir, records,
                    "MuSiQue-Ans train subset (HippoRAG): 2-4 hop questions")


def _dataset(fmt: str, folder: Path, split: str, items: list[Item], work_dir: Path,
             records: list[dict[str, str]], description: str) -> Dataset:
    """The set: its last :data:`RESERVED` questions describe the knowledge label, the rest are
    scored."""
    reserved, items = items[-RESERVED:], items[:-RESERVED]
    return Dataset(
        format=fmt, source=folder, split=split, items=items, description=description,
        corpus=_write_corpus(work_dir, fmt, records),
        routing=qa_routing([i.question for i in reserved], "Wikipedia passages"),
        notes=(f"the last {RESERVED} questions describe the knowledge label and are not scored",),
    )


def _musique_corpus(rows: list[dict[str, Any]],
                    path: Path) -> tuple[list[dict[str, str]], dict[tuple[str, str], str]]:
    records: list[dict[str, str]] = []
    ids: dict[tuple[str, str], str] = {}
    seen: dict[str, int] = {}
    for index, row in enumerate(rows):
        title, text = row.get("title"), row.get("text")
        if not isinstance(title, str) or not isinstance(text, str):
            raise DatasetError(f"{path} (passage {index}): 'title' and 'text' must be strings")
        if (title, text) in ids:
            continue
        seen[title] = seen.get(title, 0) + 1
        doc_id = title if seen[title] == 1 else f"{title} ({seen[title]})"
        ids[(title, text)] = doc_id
        records.append({"id": doc_id, "title": title, "text": text})
    return records, ids
