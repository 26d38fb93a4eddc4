"""Building OpenAI-shaped responses and stream chunks from engine outputs."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from agentflow.model_server.engine import LogprobEntry, StepOutput
from agentflow.model_server.scoring import TokenScore
from agentflow.model_server.tokenizer import Tokenizer

Kind = Literal["completion", "chat"]


@dataclass
class Echo:
    """The prompts a completion echoes (``echo: true``): their text and, with ``logprobs``, their scores."""

    texts: list[str]
    scores: list[list[TokenScore]] | None
    cached_tokens: int
    """Prompt tokens computed once for several prompts (their shared prefix), reported as OpenAI's
    ``usage.prompt_tokens_details.cached_tokens``."""


@dataclass
class Choice:
    """Accumulated state of one choice (one sample of one prompt)."""

    index: int
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[LogprobEntry] = field(default_factory=list)
    finish_reason: str | None = None
    role_sent: bool = False


class ResponseBuilder:
    """Turns engine outputs into a final body or SSE chunks, for completions or chat."""

    def __init__(
        self, kind: Kind, *, request_id: str, model: str, tokenizer: Tokenizer, n: int, prompts: list[list[int]],
        logprobs: int | None, return_token_ids: bool, echo: Echo | None = None,
    ) -> None:
        self.kind, self.request_id, self.model, self.tok = kind, request_id, model, tokenizer
        self.n, self.prompts, self.want_logprobs, self.return_token_ids = n, prompts, logprobs, return_token_ids
        self.created = int(time.time())
        self.echo = echo
        self.choices = [Choice(i) for i in range(n * len(prompts))]

    def index_of(self, prompt_index: int, out: StepOutput) -> int:
        """Choice index of an output of the ``prompt_index``-th prompt."""
        return prompt_index * self.n + out.index

    def add(self, prompt_index: int, out: StepOutput) -> Choice:
        """Fold one output into its choice."""
        choice = self.choices[self.index_of(prompt_index, out)]
        choice.text += out.text
        choice.token_ids += out.token_ids
        choice.logprobs += out.logprobs
        if out.finish_reason is not None:
            choice.finish_reason = out.finish_reason
        return choice

    def usage(self) -> dict[str, int]:
        """Token counts as OpenAI reports them."""
        prompt = sum(len(p) for p in self.prompts)
        completion = sum(len(c.token_ids) for c in self.choices)
        usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                                 "total_tokens": prompt + completion}
        if self.echo is not None and self.echo.cached_tokens:
            usage["prompt_tokens_details"] = {"cached_tokens": self.echo.cached_tokens}
        return usage

    def _token(self, token_id: int) -> str:
        return self.tok.mid_text(token_id) or self.tok.token_text(token_id)

    def _logprobs(self, entries: list[LogprobEntry], offset: int = 0) -> dict[str, Any] | None:
        if self.want_logprobs is None:
            return None
        if self.kind == "chat":
            content = []
            for e in entries:
                text = self._token(e.token_id)
                content.append({
                    "token": text, "logprob": e.logprob, "bytes": list(text.encode()),
                    "top_logprobs": [
                        {"token": self._token(t), "logprob": lp, "bytes": list(self._token(t).encode())}
                        for t, lp in e.top
                    ],
                })
            return {"content": content}
        tokens = [self._token(e.token_id) for e in entries]
        offsets, pos = [], offset
        for t in tokens:
            offsets.append(pos)
            pos += len(t)
        return {
            "tokens": tokens,
            "token_logprobs": [e.logprob for e in entries],
            "top_logprobs": [{self._token(t): lp for t, lp in e.top} for e in entries],
            "text_offset": offsets,
        }

    def _echoed(self, index: int, generated: dict[str, Any] | None) -> dict[str, Any] | None:
        """A completion choice's logprobs with the prompt's in front (vLLM: the first prompt token's are null)."""
        assert self.echo is not None
        scores = self.echo.scores
        if generated is None or scores is None:
            return generated
        tokens, values, tops, offsets, pos = [], [], [], [], 0
        for s in scores[index // self.n]:
            text = self._token(s.token_id)
            tokens.append(text)
            values.append(s.logprob)
            offsets.append(pos)
            pos += len(text)
            top = None
            if s.logprob is not None:
                top = {self._token(t): lp for t, lp in s.top}
                top.setdefault(text, s.logprob)
            tops.append(top)
        return {
            "tokens": tokens + generated["tokens"],
            "token_logprobs": values + generated["token_logprobs"],
            "top_logprobs": tops + generated["top_logprobs"],
            "text_offset": offsets + [o + pos for o in generated["text_offset"]],
        }

    def final(self) -> dict[str, Any]:
        """The non-streaming response body."""
        choices = []
        for c in self.choices:
            logprobs = self._logprobs(c.logprobs)
            if self.echo is not None:
                logprobs = self._echoed(c.index, logprobs)
            body: dict[str, Any] = {"index": c.index, "finish_reason": c.finish_reason, "logprobs": logprobs}
            if self.kind == "chat":
                body["message"] = {"role": "assistant", "content": c.text}
            else:
                body["text"] = (self.echo.texts[c.index // self.n] if self.echo is not None else "") + c.text
            if self.return_token_ids:
                body["token_ids"] = c.token_ids
            choices.append(body)
        out: dict[str, Any] = {
            "id": self.request_id, "object": "chat.completion" if self.kind == "chat" else "text_completion",
            "created": self.created, "model": self.model, "choices": choices, "usage": self.usage(),
        }
        if self.return_token_ids:
            out["prompt_token_ids"] = self.prompts
        return out

    def chunk(self, choice: Choice, out: StepOutput) -> dict[str, Any] | None:
        """A stream chunk for one output (``None`` when it carries nothing)."""
        first = self.kind == "chat" and not choice.role_sent
        if not (out.text or out.finish_reason or out.token_ids or first):
            return None
        offset = len(choice.text) - len(out.text)
        body: dict[str, Any] = {"index": choice.index, "finish_reason": out.finish_reason,
                                "logprobs": self._logprobs(out.logprobs, offset) if out.logprobs else None}
        if self.kind == "chat":
            delta: dict[str, Any] = {"content": out.text} if out.text or first else {}
            if first:
                delta["role"] = "assistant"
                choice.role_sent = True
            body["delta"] = delta
        else:
            body["text"] = out.text
        if self.return_token_ids:
            body["token_ids"] = out.token_ids
        return self._envelope([body])

    def usage_chunk(self) -> dict[str, Any]:
        """The last chunk when ``stream_options.include_usage`` is set."""
        body = self._envelope([])
        body["usage"] = self.usage()
        return body

    def _envelope(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        kind = "chat.completion.chunk" if self.kind == "chat" else "text_completion"
        return {"id": self.request_id, "object": kind, "created": self.created, "model": self.model,
                "choices": choices}
