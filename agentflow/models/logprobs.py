"""Prompt log-probabilities through a model alias: ``/v1/completions`` with ``echo`` and ``logprobs``.

Attribution (ContextCite) and multiple-choice scoring need ``log p(token | tokens before it)`` for every
token of a prompt, which chat APIs do not give. Servers that follow vLLM's convention do (agentflow's model server,
vLLM): a text completion with ``echo: true, logprobs: 0, max_tokens: 0`` returns each prompt token with its
log-probability (the first one's is ``null``). All prompts of one call go in one request, so the model
server scores them in batched passes that share their common prefix.

.. code-block:: python

    scorer = RouterScorer(router, "large")
    [scored] = await scorer.score(["Question: 2+2?\\nAnswer: 4"])
    scored.tail_logprob(" 4")          # log p(" 4" | the rest)

The request goes through LiteLLM's ``atext_completion`` (the one module that imports LiteLLM translates its
errors); a managed model server is found or started first, as the router does for chat calls.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agentflow.errors import ModelError
from agentflow.models.litellm_adapter import api_key, litellm, litellm_model, translate_error
from agentflow.models.managed_server import start_server


@dataclass(frozen=True)
class ScoredPrompt:
    """One prompt's tokens (as the server shows them) and their log-probabilities (``None`` for the first)."""

    tokens: list[str]
    logprobs: list[float | None]

    def tail(self, text: str) -> int:
        """How many trailing tokens spell ``text`` (the fewest whose joined text covers it); raises
        :class:`ValueError` when the prompt does not end with ``text``."""
        joined, count = "", 0
        while len(joined) < len(text) and count < len(self.tokens):
            count += 1
            joined = self.tokens[-count] + joined
        if not joined.endswith(text) and not text.endswith(joined.lstrip()):
            raise ValueError(f"the scored prompt does not end with {text[-40:]!r} (its tokens end {joined[-40:]!r})")
        return count

    def tail_logprob(self, text: str | int) -> float:
        """``log p(continuation | everything before it)``: the sum over its trailing tokens, given as their count
        or as the text they spell (see :meth:`tail`; a count from :func:`continuation_tokens` is exact)."""
        count = text if isinstance(text, int) else self.tail(text)
        return float(sum(v for v in self.logprobs[-count:] if v is not None)) if count else 0.0


def continuation_tokens(without: ScoredPrompt, with_: ScoredPrompt) -> int:
    """How many tokens a continuation adds: the scored prompt with it minus the one without (exact where the
    token texts cannot spell the text back, as byte tokens of a character split in two)."""
    count = len(with_.tokens) - len(without.tokens)
    if count < 1:
        raise ValueError(f"the continuation adds {count} tokens; the prompt with it must be longer")
    return count


class PromptScorer(Protocol):
    """Anything that returns prompt log-probabilities: :class:`RouterScorer`, or a test double."""

    name: str

    async def score(self, prompts: Sequence[str]) -> list[ScoredPrompt]: ...


class RouterScorer:
    """Prompt log-probabilities from the first model of ``alias`` (it must serve ``/v1/completions`` with
    ``echo``: agentflow's model server or vLLM). ``forward_passes`` counts the prompts scored."""

    def __init__(self, router: Any, alias: str, *, timeout_s: float | None = None) -> None:
        routed = router.chain(alias)[0]
        if not router.capabilities(alias).language_model:
            raise ModelError(f"model alias {alias!r} is the {routed.model.name} backend, which has no log-probabilities "
                             "(not a language model); use a model served by agentflow's model server or vLLM (e.g. --profile "
                             "local)")
        self.router, self.alias, self.routed = router, alias, routed
        self.name = routed.entry.model
        self.timeout_s = timeout_s or routed.entry.timeout_s or getattr(router, "timeout_s", 60.0)
        self.forward_passes = 0
        self.seconds = 0.0

    async def score(self, prompts: Sequence[str]) -> list[ScoredPrompt]:
        """Score ``prompts`` in one request; :class:`ModelError` when the server cannot."""
        if not prompts:
            return []
        entry = self.routed.entry
        if entry.serve is not None:
            await start_server(self.routed.model)
        server = getattr(self.routed.model, "server", None)  # a managed model server runs where it was found or started
        api_base = server.api_base if server is not None else entry.api_base
        kwargs: dict[str, Any] = {"model": litellm_model(entry.model), "prompt": list(prompts), "echo": True,
                                  "logprobs": 0,
                                  "max_tokens": 0, "temperature": 0.0, "timeout": self.timeout_s}
        if api_base:
            kwargs["api_base"] = api_base
        kwargs["api_key"] = api_key(entry) or "no-key"
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout_s):
                raw = await litellm().atext_completion(**kwargs)
        except TimeoutError as exc:
            raise ModelError(f"{entry.model}: no prompt log-probabilities within {self.timeout_s:g} s") from exc
        except Exception as exc:  # every LiteLLM/provider failure is translated here
            raise translate_error(exc, entry.model) from exc
        self.seconds += time.perf_counter() - started
        self.forward_passes += len(prompts)
        return parse_scored(raw, len(prompts), entry.model)


def parse_scored(raw: Any, count: int, model: str) -> list[ScoredPrompt]:
    """The prompts' tokens and log-probabilities from a text-completion response (object or dict)."""
    body = raw.model_dump() if hasattr(raw, "model_dump") else dict(raw)
    choices = sorted(body.get("choices") or [], key=lambda c: c.get("index", 0))
    if len(choices) != count:
        raise ModelError(f"{model}: asked to score {count} prompts, got {len(choices)} choices back")
    out = []
    for choice in choices:
        lp = choice.get("logprobs") or {}
        tokens, values = lp.get("tokens"), lp.get("token_logprobs")
        if not tokens or values is None or len(tokens) != len(values):
            raise ModelError(f"{model}: the server returned no prompt log-probabilities (it must accept echo "
                             "and logprobs on /v1/completions, as agentflow's model server and vLLM do)")
        out.append(ScoredPrompt(list(tokens), [None if v is None else float(v) for v in values]))
    return out
