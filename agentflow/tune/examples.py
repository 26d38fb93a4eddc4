"""Training examples: a prompt (chat messages, or plain text) and the completion the model should learn.

Each source renders its prompts the way the workflow's nodes do at run time, so a model tuned on them is
asked exactly what it was taught:

- ``route``: a ``classify`` node's prompt (``prompts/classify.j2`` or the node's own template) for an input,
  and ``{"label": "<gold>"}``: from a dataset with gold routes (CLINC150) or a ``classify`` node's own
  labelled examples (:func:`classify_examples`);
- ``rag``: the reference workflow's augmented prompt (``prompts/rag_answer.j2``, its few-shot example, the
  gold passages as ``[DOC n]`` among distractors) and the gold answer cited as ``<answer> [DOC k].``;
- ``qa``: the question alone (closed book) and the gold answer;
- ``text``: a corpus's documents as plain text, for knowledge injection by language modelling;
- recorded runs: :mod:`agentflow.tune.traces`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from agentflow.documents import Chunk
from agentflow.documents import Example as Shot
from agentflow.tune.base import TuneError

Task = Literal["route", "rag", "qa", "text"]
TASKS: tuple[str, ...] = ("route", "rag", "qa", "text")
Message = dict[str, str]

RAG_SHOT = Shot(
    question=("Retrieved documents:\n\n[DOC 1] The library opens at 9 am on weekdays and at 10 am on Saturdays.\n"
              "Source: hours.md\n\n[DOC 2] Members may borrow up to ten books at a time.\nSource: loans.md\n\n"
              "Question: When does the library open on Saturdays?"),
    answer="The library opens at 10 am on Saturdays [DOC 1].",
)
"""The reference workflow's few-shot example (graphs/agentic_rag.yaml, node ``answer``)."""


@dataclass(frozen=True)
class TrainExample:
    """One example: ``prompt`` is chat messages (rendered with the model's chat template) or plain text."""

    prompt: tuple[Message, ...] | str
    completion: str
    id: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)
    """What an evaluation may need (the gold label, answers); saved with the split."""

    def to_dict(self) -> dict[str, Any]:
        prompt = list(self.prompt) if isinstance(self.prompt, tuple) else self.prompt
        return {"id": self.id, "prompt": prompt, "completion": self.completion, "meta": dict(self.meta)}

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> TrainExample:
        prompt = row["prompt"]
        return cls(prompt=tuple(prompt) if isinstance(prompt, list) else str(prompt),
                   completion=str(row["completion"]), id=str(row.get("id", "")), meta=dict(row.get("meta") or {}))


@dataclass(frozen=True)
class Split:
    """Examples to train on and held-out ones to report on; disjoint by construction."""

    train: list[TrainExample]
    held_out: list[TrainExample]


def split_examples(examples: Sequence[TrainExample], *, held_out: float | int, seed: int) -> Split:
    """Shuffle with ``seed`` and hold out a fraction (``0.1``) or a count (``20``) of ``examples``."""
    if not examples:
        raise TuneError("no training examples: the source gave none (check its filters, split and limit)")
    order = list(examples)
    random.Random(seed).shuffle(order)
    count = int(held_out) if isinstance(held_out, int) or held_out >= 1 else round(len(order) * held_out)
    count = min(max(count, 0), len(order) - 1)
    return Split(train=order[count:], held_out=order[:count])


# routing ----------------------------------------------------------------------------------------
def route_prompt(text: str, labels: Sequence[Mapping[str, Any]], out_of_scope: str | None, *,
                 template: str = "prompts/classify.j2", root: str | Path = ".") -> tuple[Message, ...]:
    """The messages a ``classify`` node sends for ``text`` (labels: name, description, examples, passages)."""
    from agentflow.prompts.templates import PromptStore

    store = PromptStore.for_project(root)
    rendered = store.messages(template, {"text": text, "labels": list(labels), "out_of_scope": out_of_scope})
    return tuple({"role": m["role"], "content": m["content"]} for m in rendered)


def label_reply(label: str) -> str:
    """What the node parses: the reply a constrained model writes for a label."""
    return json.dumps({"label": label})


def route_examples(pairs: Sequence[tuple[str, str]], labels: Sequence[Mapping[str, Any]], out_of_scope: str | None,
                   *, template: str = "prompts/classify.j2", root: str | Path = ".",
                   ids: Sequence[str] | None = None) -> list[TrainExample]:
    """``(text, gold label)`` pairs as routing examples; a gold label the node cannot write is an error."""
    names = {str(label["name"]) for label in labels} | ({out_of_scope} if out_of_scope else set())
    out = []
    for index, (text, gold) in enumerate(pairs):
        if gold not in names:
            raise TuneError(f"routing example {text[:60]!r} has label {gold!r}, which is not one of the node's "
                            f"{len(names)} labels")
        out.append(TrainExample(route_prompt(text, labels, out_of_scope, template=template, root=root),
                                label_reply(gold), id=ids[index] if ids else f"route-{index}",
                                meta={"label": gold, "text": text}))
    return out


def classify_examples(workflow: str | Path, node_name: str | None = None, *,
                      template: str | None = None) -> list[TrainExample]:
    """The labelled examples of a workflow's ``classify`` node (the first, or ``node_name``) as routing examples,
    rendered with the node's own prompt template (or ``template``)."""
    from agentflow.nodes.classify import ClassifyConfig
    from agentflow.yamlsafe import safe_load

    path = Path(workflow)
    if not path.is_file():
        raise TuneError(f"--classify: no workflow file {str(path)!r}")
    spec = safe_load(path.read_text(encoding="utf-8")) or {}
    nodes = spec.get("nodes") or {}
    found = {name: body for name, body in nodes.items() if isinstance(body, Mapping) and body.get("type") == "classify"}
    if not found:
        raise TuneError(f"{path}: the workflow has no classify node")
    name = node_name or next(iter(found))
    if name not in found:
        raise TuneError(f"{path}: no classify node {name!r}; classify nodes: {', '.join(found)}")
    cfg = ClassifyConfig.model_validate({k: v for k, v in found[name].items() if k != "type"})
    labels = [label.model_dump() for label in cfg.label_list()]
    pairs = [(example, label) for label, spec_ in cfg.specs().items() for example in spec_.examples]
    if not pairs:
        raise TuneError(f"{path}: classify node {name!r} lists no examples under its labels; give each label "
                        "examples, or train on a dataset with gold routes (--dataset)")
    return route_examples(pairs, labels, cfg.out_of_scope, template=template or cfg.prompt, root=path.parent.parent
                          if (path.parent.parent / cfg.prompt).is_file() else Path.cwd())


# answering --------------------------------------------------------------------------------------
def rag_prompt(question: str, documents: Sequence[Chunk], *, root: str | Path = ".") -> tuple[Message, ...]:
    """The reference workflow's augmented prompt: system, its few-shot pair, the documents and the question."""
    from agentflow.prompts.augmented import AugmentedPrompt
    from agentflow.prompts.templates import PromptStore

    prompt = AugmentedPrompt(query=question, documents=list(documents), examples=[RAG_SHOT])
    return tuple({"role": m["role"], "content": m["content"]} for m in prompt.messages(PromptStore.for_project(root)))


def cited(answer: str, numbers: Sequence[int]) -> str:
    """``Paris [DOC 2].``: the gold answer in the form the citation grammar and checks accept."""
    marks = "".join(f"[DOC {n}]" for n in numbers)
    return f"{answer.strip().rstrip('.')} {marks}."


def qa_prompt(question: str) -> tuple[Message, ...]:
    """A closed-book question: no documents."""
    return ({"role": "system", "content": "Answer the question in a few words."}, {"role": "user", "content": question})


def read_corpus(path: Path, fields: Mapping[str, str]) -> dict[str, Chunk]:
    """A ``.jsonl`` corpus as chunks by id (``fields``: text, title and id field names)."""
    out: dict[str, Chunk] = {}
    text_f, title_f, id_f = fields.get("text", "text"), fields.get("title", "title"), fields.get("id", "id")
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            doc_id = str(row.get(id_f, line_no))
            out[doc_id] = Chunk(id=doc_id, text=str(row.get(text_f, "")), title=str(row.get(title_f) or ""),
                                source=f"{path.name}#{doc_id}")
    return out


def rag_examples(items: Sequence[Any], corpus: Mapping[str, Chunk], *, distractors: int, seed: int,
                 root: str | Path = ".") -> list[TrainExample]:
    """Questions with their gold passages placed among ``distractors`` other passages, at a seeded position."""
    rng = random.Random(seed)
    pool = sorted(corpus)
    out = []
    for item in items:
        gold_ids = [d for d in item.gold.doc_ids if d in corpus]
        if not gold_ids or not item.gold.answers:
            continue
        others = [d for d in rng.sample(pool, min(len(pool), distractors + len(gold_ids))) if d not in gold_ids]
        docs = [*gold_ids, *others[:distractors]]
        rng.shuffle(docs)
        numbers = [docs.index(d) + 1 for d in gold_ids]
        out.append(TrainExample(rag_prompt(item.question, [corpus[d] for d in docs], root=root),
                                cited(item.gold.answers[0], numbers), id=item.id,
                                meta={"answers": list(item.gold.answers), "doc_ids": gold_ids, "docs": docs}))
    return out


def dataset_examples(path: str | Path, fmt: str, *, task: Task | None = None, split: str | None = None,
                     offset: int = 0, limit: int | None = None, distractors: int = 1, seed: int = 0,
                     root: str | Path = ".", label_examples: int | None = None) -> list[TrainExample]:
    """Examples from an evaluation format's split (``items[offset:offset+limit]``); the task follows from the
    gold (routes -> ``route``, answers with a corpus -> ``rag``, answers -> ``qa``) unless given. ``label_examples``
    keeps that many examples per label in routing prompts (the classify node must then list as many: CLINC150's
    150 intents with ten examples each take 24k tokens)."""
    from agentflow.eval.formats import get_format, load_dataset

    spec = get_format(fmt)
    chosen = split or ("train" if "train" in spec.splits else None)
    data = load_dataset(path, fmt, split=chosen, work_dir=Path(root) / ".agentflow" / "eval" / "corpora")
    items = data.items[offset: None if limit is None else offset + limit]
    if task is None:
        if any(i.gold.route for i in items):
            task = "route"
        elif data.corpus is not None and any(i.gold.doc_ids for i in items):
            task = "rag"
        else:
            task = "qa"
    if task == "route":
        routing = data.routing
        if routing is None:
            raise TuneError(f"format {fmt!r} brings no labels for its routes; use --classify WORKFLOW")
        labels = [{"name": n, "description": d.description, "passages": [],
                   "examples": list(d.examples)[:label_examples] if label_examples is not None else list(d.examples)}
                  for n, d in routing.labels.items()]
        pairs = [(i.question, i.gold.route) for i in items if i.gold.route]
        return route_examples(pairs, labels, routing.out_of_scope, root=root, ids=[i.id for i in items if i.gold.route])
    if task == "qa":
        return [TrainExample(qa_prompt(i.question), i.gold.answers[0], id=i.id, meta={"answers": list(i.gold.answers)})
                for i in items if i.gold.answers]
    if data.corpus is None:
        raise TuneError(f"format {fmt!r} brings no corpus: task {task!r} needs the documents")
    corpus = read_corpus(data.corpus.path, data.corpus.field_map)
    if task == "rag":
        return rag_examples(items, corpus, distractors=distractors, seed=seed, root=root)
    wanted = dict.fromkeys(d for i in items for d in i.gold.doc_ids if d in corpus)
    return [TrainExample(corpus[d].title + "\n" if corpus[d].title else "", corpus[d].text, id=d) for d in wanted]


def load_examples_file(path: str | Path) -> list[TrainExample]:
    """Examples saved as JSON lines (``{"prompt": [...] | "...", "completion": "..."}``)."""
    out = []
    file = Path(path)
    with file.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            if line.strip():
                try:
                    out.append(TrainExample.from_dict(json.loads(line)))
                except (ValueError, KeyError, TypeError) as exc:
                    raise TuneError(f"{file}:{line_no}: not an example ({exc})") from exc
    return out
