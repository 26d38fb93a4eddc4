"""The ``reply`` node: a fixed answer, for cases that need no model (declining, say).

.. code-block:: yaml

    decline:
      type: reply
      text: "I can only answer questions about {{ collections.knowledge.description }}."

The text may be a template (Jinja2, in the same sandbox as prompt files) whose one variable is
``collections``: each collection of the run by name, with its ``name`` and ``description`` (the
one declared under ``collections:``, or "the documents in FOLDER" after its source). A workflow
pointed at other documents then says what it answers without a hard-coded product name.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

from pydantic import Field, field_validator

from agentflow.errors import ConfigError
from agentflow.graph.context import RunContext
from agentflow.graph.registry import NodeConfig, node


class ReplyConfig(NodeConfig):
    text: str = Field(min_length=1)
    """The reply; a template may use ``{{ collections.NAME.description }}``."""
    output: str = "answer"
    """State field written with the reply."""

    @field_validator("text")
    @classmethod
    def _valid_template(cls, text: str) -> str:
        return check_text_template(text)


@node("reply", reads=(), writes=lambda c: (c.output,))
async def reply(state: Any, cfg: ReplyConfig, ctx: RunContext[Any]) -> dict[str, Any]:
    """Write the configured text, its template filled in."""
    return {cfg.output: render_text(cfg.text, ctx)}


class CollectionInfo(Mapping[str, str]):
    """What a template sees of a collection: ``name`` and ``description``."""

    def __init__(self, name: str, retriever: Any) -> None:
        description = getattr(retriever, "description", "") or f"the documents in {name}"
        self._fields = {"name": name, "description": str(description)}

    def __getitem__(self, key: str) -> str:
        return self._fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)


class Collections(Mapping[str, CollectionInfo]):
    """The run's collections by name, looked up only when a template names one."""

    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx

    def __getitem__(self, name: str) -> CollectionInfo:
        try:
            return CollectionInfo(name, self._ctx.retriever(name))
        except ConfigError as exc:
            raise KeyError(f"{name}: {exc}") from None

    def __iter__(self) -> Iterator[str]:
        source = self._ctx.services.retrievers
        return iter(source if isinstance(source, Mapping) else ())

    def __len__(self) -> int:
        return sum(1 for _ in self)


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text


@lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2

    from agentflow.prompts.sandbox import sandboxed_environment

    return sandboxed_environment(undefined=jinja2.StrictUndefined, autoescape=False)


@lru_cache(maxsize=256)
def _compiled(text: str) -> Any:
    return _environment().from_string(text)


def check_text_template(text: str) -> str:
    """Refuse a template that does not parse or reaches for what the sandbox forbids."""
    if not is_template(text):
        return text
    import jinja2

    from agentflow.prompts.sandbox import unsafe_accesses

    try:
        tree = _environment().parse(text)
    except jinja2.TemplateSyntaxError as exc:
        raise ValueError(f"template, line {exc.lineno}: {exc.message}") from None
    found = unsafe_accesses(tree)
    if found:
        line, attribute = found[0]
        raise ValueError(f"template, line {line}: access to attribute {attribute!r} is not "
                         "allowed (templates format values, they cannot reach Python's internals)")
    return text


def render_text(text: str, ctx: RunContext[Any]) -> str:
    """``text`` with its template filled in from the run's collections (as is when no template)."""
    if not is_template(text):
        return text
    import jinja2

    try:
        return str(_compiled(text).render(collections=Collections(ctx))).strip()
    except (jinja2.UndefinedError, KeyError) as exc:
        raise ConfigError(
            f"the text of node {ctx.node!r} names what the run does not have: {exc}; it may use "
            "{{ collections.NAME.description }} and {{ collections.NAME.name }} for a collection "
            "of the workflow"
        ) from None
