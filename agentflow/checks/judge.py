"""The judge behind the checks: an LLM with structured output, or the offline support judge.

:class:`Judge` names a model alias (``judge`` by default, or ``small``) of the router and does the
three things the checks need from a judge:

- ``claims(answer)``: the answer as standalone statements. An LLM extracts them (RAGAS); the
  offline judge cannot, so its claims are the answer's sentences.
- ``verify(claims, documents)``: whether each claim follows from the documents. An LLM answers
  all claims in one structured reply (``{"verdicts": [{"statement", "reason", "verdict"}]}``); the
  offline :class:`~agentflow.models.offline.SupportJudge` scores each claim's sentences against the
  passages (``PromptInputs(task="judge")``).
- ``questions(answer, k)``: questions the answer answers (LLM only; RAGAS response relevancy).

Which way the judge goes is what its backend declares (:attr:`Judge.capabilities`, asked of the
router for the ``judge`` task): a backend with ``structured_fields`` (the offline support judge) is
judged the structured way above; any other is given the LLM prompts.

Every call goes through the router (cache, retries, tracing, cost). A reply that does not match
its schema is repaired once by the router; one that still does not, or a verdict list of the wrong
length after one more try, raises :class:`~agentflow.errors.ModelError`, which the checks report
as an error, never as a score.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from functools import lru_cache
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, create_model

from agentflow.checks.text import normalise_answer, statements
from agentflow.documents import Chunk
from agentflow.errors import ModelError
from agentflow.models.sampling import Sampling
from agentflow.models.types import Capabilities, JudgeVerdict, Message, PromptInputs

_GREEDY = Sampling(temperature=0.0)

CLAIMS_PROMPT = (
    "Break the answer below into standalone factual statements. Each statement must be "
    "understandable on its own: replace pronouns with what they refer to. Leave out citation "
    "markers such as [DOC 1] and anything that is not a claim about the world. Reply with only a "
    'JSON object: {"statements": ["...", ...]}.'
)
VERIFY_PROMPT = (
    "You judge whether statements are faithful to a context. For each statement, give verdict "
    "true if it can be directly inferred from the context, and false if it cannot (it is "
    "contradicted, or the context does not say it). Give a short reason. Reply with only a JSON "
    'object with one entry per statement, in the same order: {"verdicts": [{"statement": "...", '
    '"reason": "...", "verdict": true}]}.'
)
QUESTIONS_PROMPT = (
    "Write {k} different questions that the answer below answers, each as a user would ask it. "
    "Also say whether the answer is noncommittal: evasive, vague or declining to answer (for "
    "example \"I don't know\" or \"the documents do not say\"). Reply with only a JSON object: "
    '{{"questions": ["...", ...], "noncommittal": false}}.'
)
ANSWERABLE_PROMPT = (
    "You judge whether a context answers a question. Give verdict true if the passages state "
    "the answer to the question (fully or in large part), and false if they do not: they are "
    "about something else, or on the topic without the answer. Give a short reason. Reply with "
    'only a JSON object: {"reason": "...", "verdict": true}.'
)
ANSWERABLE_THRESHOLD = 0.53
"""The threshold an abstention check reports beside its verdict. The verdict itself is the judge's:
offline, the extractive answerer's abstention rule (:meth:`Judge.answerable`); this number is the
support score that best separated answerable from unanswerable CLAP NQ questions by score alone
(``benchmarks/calibrate_checks.py``, balanced accuracy 0.77), kept as the report's reference."""


# The bounds below are in the JSON Schemas only (json_schema_extra), not validated: a server
# that holds output to the schema (agentflow's model server, vLLM) keeps a small model from running on,
# and a long reply from a large model is still accepted.
_SENTENCE = {"maxLength": 200}


class Statements(BaseModel):
    statements: list[str] = Field(json_schema_extra={"maxItems": 5, "items": {
        "type": "string", "minLength": 1, **_SENTENCE}})


class StatementVerdict(BaseModel):
    statement: str = Field("", json_schema_extra=_SENTENCE)
    reason: str = Field("", json_schema_extra={"maxLength": 120})
    verdict: bool


class StatementVerdicts(BaseModel):
    verdicts: list[StatementVerdict]


@lru_cache(maxsize=32)
def verdicts_model(count: int) -> type[StatementVerdicts]:
    """:class:`StatementVerdicts` whose JSON Schema asks for exactly ``count`` verdicts (a wrong
    count is still parsed: :meth:`Judge.verify` asks again, saying what was wrong)."""
    bound = {"minItems": count, "maxItems": count}
    return create_model(  # type: ignore[call-overload,no-any-return]
        "StatementVerdicts", __base__=StatementVerdicts,
        verdicts=(list[StatementVerdict], Field(json_schema_extra=bound)),
    )


class GeneratedQuestions(BaseModel):
    questions: list[str] = Field(min_length=1, json_schema_extra={"maxItems": 5, "items": {
        "type": "string", "minLength": 1, **_SENTENCE}})
    noncommittal: bool = False


def _greedy(max_tokens: int) -> Sampling:
    """Greedy, with room for a whole reply: a bound for a model that would run on."""
    return _GREEDY.model_copy(update={"max_tokens": max_tokens})


@dataclass(frozen=True, slots=True)
class Support:
    """Whether the documents support an answer to a question (judging an abstention)."""

    answerable: bool
    score: float
    """1.0/0.0 from an LLM; the offline judge's support score of the question."""
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"answerable": self.answerable, "score": round(self.score, 4),
                "reason": self.reason}


@dataclass(frozen=True, slots=True)
class ClaimVerdict:
    """Whether one claim follows from the documents, with the judge's score and reason."""

    claim: str
    supported: bool
    score: float
    """1.0/0.0 from an LLM; the offline judge's support score (its weakest sentence)."""
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"claim": self.claim, "supported": self.supported, "score": round(self.score, 4),
                "reason": self.reason}


class Judge:
    """A model alias used as a judge; see the module docstring.

    ``claim_threshold`` is the offline judge's support score a claim needs (its weakest sentence);
    ``None`` keeps the judge's own threshold. ``max_concurrency`` bounds parallel judge calls.
    """

    def __init__(
        self,
        models: Any,
        alias: str = "judge",
        *,
        embed_alias: str = "embed",
        tracer: Any = None,
        node: str | None = None,
        claim_threshold: float | None = None,
        max_concurrency: int = 8,
    ) -> None:
        self.models = models
        self.alias = alias
        self.embed_alias = embed_alias
        self.tracer = tracer
        self.node = node
        self.claim_threshold = claim_threshold
        self._limit = asyncio.Semaphore(max_concurrency)

    @property
    def capabilities(self) -> Capabilities:
        """What the backend that judges for this alias can do: the alias's model, or the offline
        support judge where the model leaves judging to it (``offline_tasks: [judge, answerable]``
        on the model entry, as the ``local`` profile's 135M model does: benchmarks/judge_local.py)."""
        caps: Capabilities = self.models.capabilities(self.alias, task="judge")
        return caps

    @property
    def structured(self) -> bool:
        """Whether the judge answers from structured fields rather than from instructions (the
        offline support judge): claims are the answer's sentences, each scored on its own."""
        return self.capabilities.structured_fields

    @property
    def offline(self) -> bool:
        """:attr:`structured` by its older name: the judge is the offline support judge."""
        return self.structured

    @property
    def label(self) -> str:
        """How the details name this judge."""
        if self.structured:
            return f"offline support judge ({self.alias}; not an LLM)"
        return f"LLM judge ({self.alias})"

    # -- calls -----------------------------------------------------------------------------

    async def _complete(self, messages: list[Message], schema: type[BaseModel],
                        inputs: PromptInputs | None, purpose: str, *,
                        sampling: Sampling = _GREEDY) -> Any:
        async with self._limit:
            response = await self.models.complete(
                self.alias, messages, sampling=sampling, inputs=inputs, schema=schema,
                tracer=self.tracer, node=self.node, trace_data={"purpose": purpose},
            )
        return response.parsed

    async def claims(self, answer: str, question: str = "") -> list[str]:
        """The answer as standalone claims.

        Offline: its sentences, citations removed; a bare "yes" or "no" is judged as the question's
        proposition (the offline judge cannot see negation: for "no" this only says whether the
        documents address the question).
        """
        if self.structured:
            if question and normalise_answer(answer) in ("yes", "no"):
                return [question]
            return [s.clean for s in statements(answer)]
        user = (f"Question: {question}\n\n" if question else "") + f"Answer: {answer}"
        parsed = await self._complete(
            [{"role": "system", "content": CLAIMS_PROMPT}, {"role": "user", "content": user}],
            Statements, PromptInputs(task="prompt", query=question), "claims",
            sampling=_greedy(400),
        )
        return [s.strip() for s in parsed.statements if s.strip()]

    async def verify(self, claims: Sequence[str], documents: Sequence[Chunk]) -> list[ClaimVerdict]:
        """A verdict for each claim against the documents, in order."""
        if not claims:
            return []
        if self.structured:
            return list(await asyncio.gather(*(self._structured_verify(c, documents) for c in claims)))
        return await self._llm_verify(list(claims), documents)

    async def _structured_verify(self, claim: str, documents: Sequence[Chunk]) -> ClaimVerdict:
        inputs = PromptInputs(task="judge", claim=claim, documents=tuple(documents))
        messages = _verify_messages([claim], documents)
        verdict: JudgeVerdict = await self._complete(messages, JudgeVerdict, inputs, "verify")
        weakest = min(verdict.sentence_scores) if verdict.sentence_scores else verdict.score
        supported = (verdict.supported if self.claim_threshold is None
                     else weakest >= self.claim_threshold)
        return ClaimVerdict(claim, supported, float(weakest), verdict.reason)

    def _fitting(self, build: Callable[[Sequence[Chunk]], list[Message]],
                 documents: Sequence[Chunk], max_tokens: int) -> list[Message]:
        """``build(documents)`` with the lowest-ranked documents left out until the prompt and
        ``max_tokens`` fit the judge's context window (a small local model's is 2,048 tokens)."""
        kept = list(documents)
        messages = build(kept)
        # a tenth kept free: the count is LiteLLM's tokenizer for the model, maybe not its own
        limit = int(self.models.context_window(self.alias) * 0.9) - max_tokens
        while len(kept) > 1 and self.models.count_tokens(self.alias, messages) > limit:
            kept.pop()
            messages = build(kept)
        return messages

    async def _llm_verify(self, claims: list[str], documents: Sequence[Chunk]) -> list[ClaimVerdict]:
        max_tokens = 120 * len(claims) + 40
        messages = self._fitting(lambda docs: _verify_messages(claims, docs), documents,
                                 max_tokens)
        inputs = PromptInputs(task="judge", claim=" ".join(claims), documents=tuple(documents))
        for attempt in (1, 2):
            parsed: StatementVerdicts = await self._complete(
                messages, verdicts_model(len(claims)), inputs, "verify",
                sampling=_greedy(max_tokens))
            if len(parsed.verdicts) == len(claims):
                return [ClaimVerdict(c, v.verdict, 1.0 if v.verdict else 0.0, v.reason)
                        for c, v in zip(claims, parsed.verdicts, strict=True)]
            if attempt == 1:  # one more try, saying what was wrong
                messages = [*messages, {"role": "user", "content": (
                    f"Your reply had {len(parsed.verdicts)} verdicts for {len(claims)} statements. "
                    "Reply again with exactly one verdict per statement, in order.")}]
        raise ModelError(
            f"judge alias {self.alias!r} returned {len(parsed.verdicts)} verdicts for "
            f"{len(claims)} statements, even after a second request"
        )

    async def answerable(self, question: str, documents: Sequence[Chunk], *,
                         threshold: float = ANSWERABLE_THRESHOLD) -> Support:
        """Whether ``documents`` support an answer to ``question``.

        Offline: the extractive answerer's own abstention rule decides (so a right abstention
        is one the answerer and the check agree on; ``threshold`` is not used); an LLM judge is
        asked (:data:`ANSWERABLE_PROMPT`).
        """
        if not documents:
            return Support(False, 0.0, "no documents were retrieved")
        if self.structured:
            inputs = PromptInputs(task="answerable", query=question, documents=tuple(documents))
            verdict: JudgeVerdict = await self._complete(
                _verify_messages([question], documents), JudgeVerdict, inputs, "answerable")
            return Support(verdict.supported, float(verdict.score),
                           f"{verdict.reason}, offline answerability")
        def build(docs: Sequence[Chunk]) -> list[Message]:
            context = "\n\n".join(f"Passage {i}: {d.text}" for i, d in enumerate(docs, 1))
            return [{"role": "system", "content": ANSWERABLE_PROMPT},
                    {"role": "user", "content": f"Context:\n{context}\n\nQuestion: {question}"}]

        parsed: StatementVerdict = await self._complete(
            self._fitting(build, documents, 200),
            StatementVerdict, PromptInputs(task="prompt", query=question), "answerable",
            sampling=_greedy(200),
        )
        return Support(parsed.verdict, 1.0 if parsed.verdict else 0.0, parsed.reason or
                       ("the passages answer it" if parsed.verdict else "they do not answer it"))

    async def questions(self, answer: str, k: int) -> GeneratedQuestions:
        """``k`` questions the answer answers, and whether it is noncommittal (LLM judges only)."""
        if self.structured:
            raise ModelError(
                "the offline judge is not a language model and cannot write questions; use the "
                "offline relevancy variant (answer-sentence similarity) or an LLM judge"
            )
        parsed: GeneratedQuestions = await self._complete(
            [{"role": "system", "content": QUESTIONS_PROMPT.format(k=k)},
             {"role": "user", "content": f"Answer: {answer}"}],
            GeneratedQuestions, PromptInputs(task="prompt"), "questions",
            sampling=_greedy(300),
        )
        return parsed

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings of ``texts`` with the embedding alias."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        vectors = np.asarray(await self.models.embed(self.embed_alias, list(texts)),
                             dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1.0, norms)


def _verify_messages(claims: Sequence[str], documents: Sequence[Chunk]) -> list[Message]:
    context = "\n\n".join(f"Passage {i}: {d.text}" for i, d in enumerate(documents, 1))
    listed = "\n".join(f"{i}. {c}" for i, c in enumerate(claims, 1))
    return [
        {"role": "system", "content": VERIFY_PROMPT},
        {"role": "user", "content": f"Context:\n{context or '(no passages)'}\n\nStatements:\n{listed}"},
    ]

