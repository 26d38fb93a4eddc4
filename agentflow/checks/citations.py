"""The ``citations`` check: are an answer's ``[DOC n]`` citations real, and do they support it?

For each sentence of the answer (see :func:`~agentflow.checks.text.statements`):

1. its citations are parsed (``[DOC 2]``, ``[DOC 1, 3]``, ``[DOC 1][DOC 3]``, ranges);
2. numbers outside the retrieved documents are flagged (an invented source fails the check);
3. the judge decides whether the cited documents together support the sentence.

Citation recall and precision follow ALCE (Gao et al., 2023, "Enabling Large Language Models to
Generate Text with Citations"): a sentence's recall is 1 when the concatenation of its cited
documents entails it (0 without citations, or with an id that was not retrieved); a citation is
precise unless its sentence is not supported at all, or it is *irrelevant*: it does not support
the sentence alone and the sentence's other citations support it without it. Recall is averaged
over sentences, precision over citations. The check's score is their harmonic mean (F1); it passes
when no id is invented and F1 reaches the threshold.

:func:`resolve_citations` turns every citation into plain data for the trace UI and
``--output json``: ``{"doc": n, "source", "chunk_id", "quote", "statement", "valid"}``, where
``quote`` is the sentence of the document that best matches the citing statement.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agentflow.checks.judge import ClaimVerdict, Judge
from agentflow.checks.registry import CheckCall, CheckOptions, register_check
from agentflow.checks.result import (
    AbstentionPolicy,
    CheckResult,
    Severity,
    abstained_result,
    error_result,
)
from agentflow.checks.text import Statement, best_sentence, is_abstention, statements
from agentflow.documents import Chunk
from agentflow.errors import ModelError

DEFAULT_THRESHOLD = 0.75


@dataclass(slots=True)
class _Sentence:
    statement: Statement
    invalid: list[int] = field(default_factory=list)
    supported: bool = False
    score: float = 0.0
    judge_reason: str = ""
    precise: dict[int, bool] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.statement.index, "text": self.statement.clean,
            "cited": list(self.statement.cited), "invalid": self.invalid,
            "supported": self.supported, "score": round(self.score, 4),
            "judge_reason": self.judge_reason,
            "unnecessary": [n for n, ok in self.precise.items() if not ok and self.supported],
        }


def resolve_citations(answer: str, documents: Sequence[Chunk]) -> list[dict[str, Any]]:
    """Every citation of ``answer``, in order, resolved to its document as plain data.

    ``[DOC n]`` is the n-th of ``documents``. A number with no document gets ``valid: false``
    and empty fields.
    """
    out: list[dict[str, Any]] = []
    for statement in statements(answer):
        for n in statement.cited:
            if 1 <= n <= len(documents):
                chunk = documents[n - 1]
                quote, _ = best_sentence(statement.clean, chunk.text)
                out.append({"doc": n, "source": chunk.source, "chunk_id": chunk.id,
                            "quote": quote, "statement": statement.clean, "valid": True})
            else:
                out.append({"doc": n, "source": "", "chunk_id": None, "quote": "",
                            "statement": statement.clean, "valid": False})
    return out


async def check_citations(
    answer: str,
    documents: Sequence[Chunk],
    judge: Judge,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    severity: Severity = "fail",
    name: str = "citations",
    abstention: AbstentionPolicy = "fail",
) -> CheckResult:
    """Check the citations of ``answer`` against the ``documents`` it was written from."""
    sentences = [_Sentence(s) for s in statements(answer)]
    cited_any = any(s.statement.cited for s in sentences)
    if not cited_any and is_abstention(answer):
        return abstained_result(name, "citations", threshold=threshold, severity=severity,
                                policy=abstention, judge=judge.label)
    if not sentences:
        return CheckResult(name=name, kind="citations", score=None, passed=False,
                           threshold=threshold, reason="the answer is empty", severity=severity,
                           details={"judge": judge.label})
    for s in sentences:
        s.invalid = [n for n in s.statement.cited if not 1 <= n <= len(documents)]
    try:
        await _judge_support(sentences, documents, judge)
    except ModelError as exc:
        return error_result(name, "citations", exc, threshold=threshold, severity=severity,
                            judge=judge.label)
    return _result(answer, sentences, documents, judge, name=name, threshold=threshold,
                   severity=severity)


class CitationsOptions(CheckOptions):
    """Options of the ``citations`` check kind."""

    citations_output: str | None = None
    """State field that receives the resolved citations
    (``[{doc, source, chunk_id, quote, statement, valid, supported}]``)."""


def _citations_of(result: CheckResult, call: CheckCall) -> list[dict[str, Any]]:
    """What ``citations_output`` receives: the checked citations, or (when the check had none to
    judge: an abstention, a failed judge) the answer's citations resolved without support."""
    return result.details.get("citations") or resolve_citations(call.answer, call.documents)


@register_check("citations", options=CitationsOptions, default_threshold=DEFAULT_THRESHOLD,
                reads=("answer", "documents"), outputs={"citations_output": _citations_of})
async def _citations(call: CheckCall, options: CitationsOptions) -> CheckResult:
    """Are the answer's ``[DOC n]`` citations real, and do they support it: the F1 of ALCE
    citation recall and precision; an invented id fails."""
    return await check_citations(call.answer, call.documents, call.judge, threshold=call.threshold,
                                 severity=call.severity, name=call.name,
                                 abstention=call.abstention)


async def _judge_support(sentences: list[_Sentence], documents: Sequence[Chunk],
                         judge: Judge) -> None:
    def docs(numbers: Sequence[int]) -> list[Chunk]:
        return [documents[n - 1] for n in numbers]

    async def entails(s: _Sentence, numbers: Sequence[int]) -> ClaimVerdict:
        return (await judge.verify([s.statement.clean], docs(numbers)))[0]

    # ALCE: the joint support of each cited sentence (no citation or an invented id: 0)
    checkable = [s for s in sentences if s.statement.cited and not s.invalid]
    joint = await asyncio.gather(*(entails(s, s.statement.cited) for s in checkable))
    for s, verdict in zip(checkable, joint, strict=True):
        s.supported, s.score, s.judge_reason = verdict.supported, verdict.score, verdict.reason
        s.precise = {n: verdict.supported for n in s.statement.cited}
    # precision of multi-citation sentences: is each citation needed?
    multi = [(s, n) for s in checkable if s.supported and len(s.statement.cited) > 1
             for n in s.statement.cited]
    alone = await asyncio.gather(*(entails(s, [n]) for s, n in multi))
    lacking = [(s, n) for (s, n), v in zip(multi, alone, strict=True) if not v.supported]
    rest = await asyncio.gather(
        *(entails(s, [m for m in s.statement.cited if m != n]) for s, n in lacking)
    )
    for (s, n), verdict in zip(lacking, rest, strict=True):
        s.precise[n] = not verdict.supported  # others suffice without it: irrelevant


def _result(answer: str, sentences: list[_Sentence], documents: Sequence[Chunk], judge: Judge,
            *, name: str, threshold: float, severity: Severity) -> CheckResult:
    recall = sum(s.supported for s in sentences) / len(sentences)
    total = sum(len(s.statement.cited) for s in sentences)
    precise = sum(ok for s in sentences for ok in s.precise.values())
    precision = precise / total if total else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    invalid = sorted({n for s in sentences for n in s.invalid})
    passed = not invalid and f1 >= threshold
    problems = _problems(sentences, len(documents))
    head = (f"citation recall {recall:.2f}, precision {precision:.2f} (F1 {f1:.2f} "
            f"{'>=' if f1 >= threshold else '<'} {threshold:g})")
    reason = head + (": " + "; ".join(problems) if problems else "")
    details = {
        "recall": round(recall, 4), "precision": round(precision, 4), "f1": round(f1, 4),
        "invalid_ids": invalid, "documents": len(documents), "citations_total": total,
        "sentences": [s.as_dict() for s in sentences],
        "citations": _resolved_with_support(answer, documents, sentences),
        "judge": judge.label,
    }
    return CheckResult(name=name, kind="citations", score=round(f1, 4), passed=passed,
                       threshold=threshold, reason=reason, details=details, severity=severity)


def _problems(sentences: list[_Sentence], n_docs: int) -> list[str]:
    known = f"DOC 1-{n_docs}" if n_docs else "none"
    out: list[str] = []
    for s in sentences:
        where, text = f"sentence {s.statement.index + 1}", _short(s.statement.clean)
        if s.invalid:
            ids = ", ".join(f"[DOC {n}]" for n in s.invalid)
            out.append(f"{where} cites {ids}, which {'was' if len(s.invalid) == 1 else 'were'} "
                       f"not retrieved (retrieved: {known}): {text!r}")
        elif not s.statement.cited:
            out.append(f"{where} has no citation: {text!r}")
        elif not s.supported:
            cites = ", ".join(str(n) for n in s.statement.cited)
            out.append(f"{where} is not supported by [DOC {cites}]: {text!r}")
        else:
            extra = [n for n, ok in s.precise.items() if not ok]
            if extra:
                out.append(f"{where} does not need " + ", ".join(f"[DOC {n}]" for n in extra))
    return out


def _resolved_with_support(answer: str, documents: Sequence[Chunk],
                           sentences: list[_Sentence]) -> list[dict[str, Any]]:
    by_text = {s.statement.clean: s for s in sentences}
    out = []
    for item in resolve_citations(answer, documents):
        s = by_text.get(item["statement"])
        out.append({**item, "supported": bool(s and s.supported)})
    return out


def _short(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
