"""The backend of the ``offline`` profile: deterministic, local, and not a language model.

One :class:`OfflineModel` serves every alias of the profile and dispatches on the request's task:
``classify`` goes to the :class:`EmbeddingClassifier`, ``generate`` (and a free-form ``prompt``
that names a query) to the :class:`ExtractiveAnswerer`, ``judge`` to the :class:`SupportJudge`.
It reads only the structured :class:`PromptInputs`; the rendered messages are never parsed.
Sampling does not apply (the answers are deterministic); ``n`` copies of the answer are returned
when ``n`` samples are asked for.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence

from agentflow.errors import ModelError
from agentflow.models.budget import estimate_messages, estimate_tokens
from agentflow.models.embeddings.base import LocalEmbedder
from agentflow.models.embeddings.minilm import MiniLMEmbedder
from agentflow.models.offline.classifier import PASSAGE_THRESHOLD, EmbeddingClassifier
from agentflow.models.offline.extractive import (
    ExtractiveAnswerer,
    SupportJudge,
    passage_sentences,
)
from agentflow.models.offline.text import expand_query
from agentflow.models.sampling import Sampling, SamplingPlan, unsampled_plan
from agentflow.models.types import (
    Capabilities,
    ChatRequest,
    ChatResponse,
    Classification,
    JudgeVerdict,
    PromptInputs,
    Usage,
)

THANKS = frozenset({"thank", "thanks", "thx", "appreciate", "appreciated", "helpful", "grateful",
                    "cheers"})
GOODBYE = frozenset({"bye", "goodbye", "farewell", "later", "night"})
"""Words that make a message thanks or a goodbye for the offline chat reply (else a greeting)."""


def passage_units(passages: Sequence[str]) -> list[str]:
    """The sentences of a label's passages (headings among them) that the classifier compares
    the input with: the answerer's own units, whose vectors ingestion has cached already."""
    return list(dict.fromkeys(u for p in passages for u in passage_sentences(p)))


def chat_reply(message: str, purpose: str) -> str:
    """The offline reply to conversation: deterministic, one sentence for greetings, thanks or
    goodbyes, ending with an offer to help with the chat node's ``purpose``."""
    words = set(re.findall(r"[a-z]+", message.lower()))
    offer = f" with {purpose.strip().rstrip('.')}" if purpose.strip() else ""
    if words & THANKS:
        return f"You're welcome! I'm glad to help{offer}."
    if words & GOODBYE:
        return f"Goodbye! Come back any time for help{offer}."
    return f"Hello! I can help{offer}: ask me a question."

PREPARE_LIMIT = 10_000
"""Most sentences :meth:`OfflineModel.prepare` embeds ahead of questions (about half a minute on
two CPU cores); a larger corpus has its sentences embedded as questions reach them."""

NO_LLM = (
    "the offline profile has no language model, so it cannot follow a free-form prompt without a "
    "query and documents; choose a profile with one (local, openai, anthropic, ollama, self-hosted)"
)


class OfflineModel:
    """Classifier, extractive answerer and support judge behind the :class:`ChatModel` protocol."""

    name = "offline"
    kind = "offline"
    capabilities = Capabilities(
        structured_fields=True, language_model=False, sampling=False, deterministic=True,
        free=True, prepares_passages=True, in_process=True,
    )
    """Answers from the structured fields alone, deterministically and in this process (so at no
    cost), is not a language model, and embeds passages ahead of questions (:meth:`prepare`)."""

    def __init__(
        self,
        encoder: LocalEmbedder | None = None,
        *,
        answerer: ExtractiveAnswerer | None = None,
        judge: SupportJudge | None = None,
        max_classifiers: int = 32,
    ) -> None:
        self.encoder: LocalEmbedder = encoder or MiniLMEmbedder()
        self.answerer = answerer or ExtractiveAnswerer(self.encoder)
        self.judge = judge or SupportJudge(self.encoder)
        self._classifiers: OrderedDict[str, EmbeddingClassifier] = OrderedDict()
        self._max_classifiers = max_classifiers
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OfflineModel(encoder={self.encoder.name!r})"

    def prepare(self, passages: Sequence[str], *, progress: bool = False) -> int:
        """Embed the sentences of ``passages`` that the answerer and the judge score, now rather
        than at the first question that retrieves them; returns how many were embedded.

        Vectors go to the shared on-disk cache, so this is done once per corpus: call it after an
        ingestion that wrote new passages. Does nothing for more than :data:`PREPARE_LIMIT`
        sentences, and nothing for an encoder without a cache worth filling.
        """
        if not isinstance(self.encoder, MiniLMEmbedder):
            return 0
        units = list(dict.fromkeys(u for text in passages for u in passage_sentences(text)))
        if not units or len(units) > PREPARE_LIMIT:
            return 0
        from tqdm.auto import tqdm

        step = 512
        with tqdm(total=len(units), unit="sentence", desc="embed sentences",
                  disable=not progress) as bar:
            for i in range(0, len(units), step):
                self.encoder.encode(units[i:i + step])
                bar.update(len(units[i:i + step]))
        return len(units)

    def sampling_plan(self, sampling: Sampling) -> SamplingPlan:
        return unsampled_plan(sampling)

    async def complete(self, request: ChatRequest) -> ChatResponse:
        inputs = request.inputs
        if inputs is None:
            raise ModelError(
                "offline backends answer from the structured fields a prompt was rendered from, "
                "and this request has none; call the model through a classify, generate or llm "
                "node, or pass inputs=PromptInputs(...) to the router"
            )
        started = time.perf_counter()
        response = await asyncio.to_thread(self._answer, inputs, request)
        n = request.sampling.n or 1
        return response.model_copy(
            update={
                "choices": (response.text,) * n if n > 1 else (),
                "latency_s": time.perf_counter() - started,
                "usage": Usage(
                    prompt_tokens=estimate_messages(request.messages),
                    completion_tokens=estimate_tokens(response.text),
                    estimated=True,
                ),
            }
        )

    def _answer(self, inputs: PromptInputs, request: ChatRequest) -> ChatResponse:
        if inputs.task == "classify":
            return self._classify(inputs)
        if inputs.task == "queries":
            queries = expand_query(inputs.query, inputs.count or 3)
            return ChatResponse(text=json.dumps(queries), parsed=queries,
                                model="offline/query-expansion", finish_reason="stop")
        if inputs.task == "chat":
            reply = chat_reply(inputs.query, str(inputs.variables.get("purpose", "")))
            return ChatResponse(text=reply, model="offline/chat", finish_reason="stop")
        if inputs.task == "judge":
            verdict = self.judge.judge(inputs.claim or inputs.query, inputs.documents)
            return ChatResponse(
                text=verdict.model_dump_json(), parsed=verdict, model="offline/judge",
                finish_reason="stop",
            )
        if inputs.task == "answerable":
            verdict = self.answerability(inputs)
            return ChatResponse(text=verdict.model_dump_json(), parsed=verdict,
                                model="offline/answerability", finish_reason="stop")
        if request.response_schema is not None:
            raise ModelError(
                "the offline extractive answerer writes text only and cannot fill the output "
                f"schema {request.schema_name!r}; use a profile with a language model"
            )
        if inputs.task == "prompt" and not inputs.query:
            raise ModelError(NO_LLM)
        answer = self.answerer.answer(inputs.query, inputs.numbered_documents())
        return ChatResponse(
            text=answer.text, model="offline/extractive",
            finish_reason="abstain" if answer.abstained else "stop",
        )

    def answerability(self, inputs: PromptInputs) -> JudgeVerdict:
        """Whether the documents answer ``inputs.query``: the extractive answerer's own decision
        (it abstains exactly when this says no), so a right abstention is one the documents lack
        the answer for by the same measure."""
        answer = self.answerer.answer(inputs.query, inputs.numbered_documents())
        reason = answer.reason if answer.abstained else (
            f"a sentence answers it (score {answer.support:.2f}): {answer.evidence[0].sentence[:100]!r}")
        return JudgeVerdict(score=round(min(max(answer.support, 0.0), 1.0), 4), supported=not answer.abstained,
                            reason=reason)

    def _classify(self, inputs: PromptInputs) -> ChatResponse:
        if not inputs.query:
            raise ModelError("a classify request needs the text to classify in inputs.query")
        classifier = self.classifier(inputs)
        passages = {label.name: passage_units(label.passages)
                    for label in inputs.labels if label.passages}
        threshold = inputs.threshold
        if threshold is None and inputs.out_of_scope is not None:
            threshold = PASSAGE_THRESHOLD if passages else classifier.default_threshold()
        prediction = classifier.predict([inputs.query], threshold=threshold, passages=passages)[0]
        label = prediction.label if prediction.label is not None else inputs.out_of_scope
        if label is None:  # no out-of-scope label: the best label wins whatever its score
            label = prediction.top[0][0]
        parsed = Classification(
            label=label, score=round(prediction.score, 6),
            scores={name: round(score, 6) for name, score in prediction.top},
            threshold=None if threshold is None else round(threshold, 6),
            nearest=prediction.nearest,
        )
        # the reply says how the label was chosen: {"label": ...} plus its scores
        return ChatResponse(
            text=parsed.model_dump_json(exclude_none=True), parsed=parsed,
            model="offline/classifier", finish_reason="stop",
        )

    def classifier(self, inputs: PromptInputs) -> EmbeddingClassifier:
        """The classifier fitted to this request's labels (fitted once, then reused)."""
        labels = [label.model_dump(mode="json", exclude={"passages"}) for label in inputs.labels]
        if not labels:
            raise ModelError("a classify request needs at least one label in inputs.labels")
        key = hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()
        with self._lock:
            classifier = self._classifiers.get(key)
            if classifier is not None:
                self._classifiers.move_to_end(key)
                return classifier
        classifier = EmbeddingClassifier(self.encoder).fit(inputs.labels)
        with self._lock:
            self._classifiers[key] = classifier
            while len(self._classifiers) > self._max_classifiers:
                self._classifiers.popitem(last=False)
        return classifier
