"""Text in and out of the server: prompts and chat templates to ids, ids back to streamed text with stop strings.

Wraps a HuggingFace tokenizer. Decoding is incremental with a look-back window (a token's text can depend
on the one before it, and a multi-byte character can span tokens), and text that might be the start of a
stop string is held back from a stream until it is known not to be one.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentflow.model_server.config import ModelLoadError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)


class NoChatTemplateError(ValueError):
    """The model has no chat template, so chat requests cannot be rendered."""


class Tokenizer:
    """A served model's tokenizer: encode prompts and chats, decode streams, list each token's text."""

    def __init__(self, hf: PreTrainedTokenizerBase, *, model_name: str) -> None:
        self.hf, self.model_name = hf, model_name
        self.vocab_size = len(hf)

    @classmethod
    def load(cls, model_dir: Path) -> Tokenizer:
        """Load the tokenizer files of a model directory."""
        from transformers import AutoTokenizer

        return cls(AutoTokenizer.from_pretrained(str(model_dir)), model_name=model_dir.name)

    @classmethod
    def load_gguf(cls, path: Path, *, model_name: str) -> Tokenizer:
        """The tokenizer of a GGUF file (parses the file's header; a server that has it open uses :meth:`from_gguf`)."""
        from agentflow.model_server.gguf import GGUFModel

        return cls.from_gguf(GGUFModel(path).metadata, model_name=model_name, path=path)

    @classmethod
    def from_gguf(cls, metadata: dict[str, Any], *, model_name: str, path: Path) -> Tokenizer:
        """Build a GGUF model's tokenizer from its parsed metadata (``tokenizer.ggml.*``, ``tokenizer.chat_template``).

        transformers' GGUF converter turns the vocabulary, merges, scores and token types into a ``tokenizers``
        tokenizer (BPE for ``gpt2``: SmolLM2, Llama 3, Qwen; SentencePiece for ``llama``: TinyLlama, Llama 2)
        with the file's special tokens: the tokenizer ``AutoTokenizer.from_pretrained(..., gguf_file=...)``
        builds, without its second and third parse of the file (~10 s of the server's start-up before).
        """
        try:
            from transformers.integrations.gguf import GGUF_TOKENIZER_MAPPING, convert_gguf_tokenizer
            from transformers.tokenization_utils_tokenizers import TokenizersBackend
        except ImportError as exc:  # an older transformers: its own (slower) path reads the file again
            log.info("building the GGUF tokenizer through AutoTokenizer (%s)", exc)
            return cls._auto_gguf(path, model_name=model_name)
        # What transformers' get_gguf_tokenizer does with the metadata it reads itself.
        groups = {group: {name: metadata[f"tokenizer.{key}"] for key, name in renames.items()
                          if f"tokenizer.{key}" in metadata}
                  for group, renames in GGUF_TOKENIZER_MAPPING.items()}
        tokens, config = groups["tokenizer"], groups["tokenizer_config"]
        if tokens.get("tokenizer_type") == "llama":  # llama.cpp adds BOS to SentencePiece vocabularies by default
            config.setdefault("add_bos_token", True)
        vocab = tokens.get("tokens") or []
        for name, key in (("bos_token", "bos_token_id"), ("eos_token", "eos_token_id"),
                          ("unk_token", "unknown_token_id"), ("pad_token", "padding_token_id")):
            token_id = metadata.get(f"tokenizer.ggml.{key}")
            config[name] = vocab[token_id] if token_id is not None and 0 <= token_id < len(vocab) else None
        try:
            backend, extra = convert_gguf_tokenizer(str(metadata.get("general.architecture", "")), tokens)
            hf = TokenizersBackend(tokenizer_object=backend, name_or_path=str(path.parent), **config, **extra)
        except (ValueError, KeyError, NotImplementedError) as exc:
            raise ModelLoadError(f"{path}: the tokenizer in the GGUF metadata cannot be built ({exc}); "
                                 "supported: tokenizer.ggml.model 'gpt2' (BPE) and 'llama' (SentencePiece)") from exc
        return cls(hf, model_name=model_name)

    @classmethod
    def _auto_gguf(cls, path: Path, *, model_name: str) -> Tokenizer:
        from transformers import AutoTokenizer

        try:
            hf = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True)
        except (ValueError, KeyError, NotImplementedError) as exc:
            raise ModelLoadError(f"{path}: the tokenizer in the GGUF metadata cannot be built ({exc}); "
                                 "supported: tokenizer.ggml.model 'gpt2' (BPE) and 'llama' (SentencePiece)") from exc
        return cls(hf, model_name=model_name)

    @property
    def has_chat_template(self) -> bool:
        """Whether chat messages can be rendered."""
        return bool(getattr(self.hf, "chat_template", None))

    @functools.cached_property
    def max_token_chars(self) -> int:
        """An upper bound on the characters one token stands for (its longest vocabulary entry, special tokens
        included): a text longer than ``context * max_token_chars`` cannot fit, so it is refused untokenized."""
        pieces = self.hf.convert_ids_to_tokens(list(range(len(self.hf))))
        return max((len(p) for p in pieces if isinstance(p, str)), default=1) or 1

    def encode(self, text: str) -> list[int]:
        """Token ids of a completion prompt, with the model's usual special tokens (such as BOS)."""
        return list(self.hf(text, add_special_tokens=True)["input_ids"])

    def encode_chat(self, messages: list[dict[str, Any]]) -> list[int]:
        """Render chat messages with the model's template (generation prompt added) and encode them."""
        if not self.has_chat_template:
            raise NoChatTemplateError(
                f"model {self.model_name!r} has no chat template (tokenizer_config.json has no 'chat_template'); "
                "use /v1/completions with a plain prompt"
            )
        text = self.hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return list(self.hf(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        """Text of ``ids`` with special tokens left out."""
        return str(self.hf.decode(ids, skip_special_tokens=True))

    def token_text(self, token_id: int) -> str:
        """One token as the logprobs API shows it (its own text, special tokens included)."""
        return str(self.hf.decode([token_id], skip_special_tokens=False))

    @functools.cached_property
    def _mid_texts(self) -> list[str | None]:
        special = set(self.hf.all_special_ids)
        anchor_ids = self.hf.encode("a", add_special_tokens=False)
        anchor = anchor_ids[-1] if anchor_ids and self.hf.decode(anchor_ids[-1:]) == "a" else None
        return token_texts(lambda ids: str(self.hf.decode(ids)), self.vocab_size, special, anchor)

    def mid_text(self, token_id: int) -> str | None:
        """A token's text in mid-sequence (``None`` for special or partial-character tokens), as logprobs show it."""
        texts = self._mid_texts
        return texts[token_id] if 0 <= token_id < len(texts) else None


def token_texts(
    decode: Callable[[list[int]], str], vocab_size: int, special_ids: set[int], anchor: int | None
) -> list[str | None]:
    """Each token's text in mid-sequence: ``decode([anchor, t])`` minus ``decode([anchor])``, which keeps the
    leading space that SentencePiece decoders strip at the start of a text."""
    prefix = decode([anchor]) if anchor is not None else ""
    texts: list[str | None] = []
    for t in range(vocab_size):
        if t in special_ids:
            texts.append(None)
            continue
        full = decode([anchor, t]) if anchor is not None else decode([t])
        text = full[len(prefix):] if full.startswith(prefix) else None
        texts.append(None if not text or "\ufffd" in text else text)
    return texts


@dataclass
class TextDelta:
    """New text for a stream, and whether a stop string ended the sequence."""

    text: str
    stopped: bool = False


class TextStream:
    """Incremental detokenizer plus stop-string matcher for one generated sequence."""

    def __init__(self, tokenizer: Tokenizer, prompt_ids: list[int], stop: tuple[str, ...]) -> None:
        self.tok = tokenizer
        tail = prompt_ids[-6:]
        self.ids: list[int] = list(tail)
        self.prefix_offset = 0
        self.read_offset = len(tail)
        self.stop = tuple(s for s in stop if s)
        self.hold = max((len(s) for s in self.stop), default=1) - 1
        self.text = ""
        self.emitted = 0
        self.stopped = False

    def add(self, token_id: int) -> TextDelta:
        """Append a token; return the text that can be released now."""
        if self.stopped:
            return TextDelta("", True)
        self.ids.append(token_id)
        prefix_text = self.tok.decode(self.ids[self.prefix_offset : self.read_offset])
        new_text = self.tok.decode(self.ids[self.prefix_offset :])
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            self.text += new_text[len(prefix_text) :]
            self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)
        return self._release(final=False)

    def finish(self) -> TextDelta:
        """Flush held-back text at the end of the sequence."""
        if not self.stopped:
            rest = self.tok.decode(self.ids[self.prefix_offset :])
            prefix_text = self.tok.decode(self.ids[self.prefix_offset : self.read_offset])
            if len(rest) > len(prefix_text):
                self.text += rest[len(prefix_text) :]
                self.prefix_offset = self.read_offset = len(self.ids)
        return self._release(final=True)

    def _release(self, *, final: bool) -> TextDelta:
        if self.stop and not self.stopped:
            start = max(0, self.emitted - self.hold)
            hits = [i for i in (self.text.find(s, start) for s in self.stop) if i >= 0]
            if hits:
                self.text = self.text[: min(hits)]
                self.stopped = True
        end = len(self.text) if (final or self.stopped) else max(self.emitted, len(self.text) - self.hold)
        delta = self.text[self.emitted : end]
        self.emitted = end
        return TextDelta(delta, self.stopped)
