"""Prompt templates: Jinja2 files under ``prompts/``, rendered with strict undefined variables.

A template is named by its path from the project root, as workflows reference it
(``prompts/rag_answer.j2``). The store looks in the project first and then in agentflow's own
``prompts/`` folder, so a project overrides a built-in template by adding a file of the same name.

A template may define ``{% block system %}`` and ``{% block user %}``: :meth:`PromptStore.messages`
renders them as a system and a user message. A template without blocks renders as one user message.
Any variable a template uses but is not given is an error, never an empty string.

Templates render in Jinja2's immutable sandbox: a prompt file is data, not code. Attributes that
start with ``_`` (``__class__``, ``__globals__``, ``__init__``...), the internals of functions and
frames, and methods that change a value (``list.append``) are refused, first when the template is
loaded (so ``agentflow validate`` reports them) and again by the sandbox while rendering; either
way a :class:`PromptError` names the file and line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from agentflow.errors import ConfigError, PromptError, did_you_mean

if TYPE_CHECKING:
    import jinja2

    from agentflow.models.types import Message

BUILTIN_ROOT = Path(__file__).resolve().parents[2]
"""agentflow's source checkout, whose ``prompts/`` holds the built-in templates."""
MESSAGE_BLOCKS = ("system", "user")


@runtime_checkable
class PromptSource(Protocol):
    """What nodes need of a run's prompts: a template, by name, rendered as chat messages, and
    its named blocks (the few-shot example blocks of an augmented prompt).

    :class:`PromptStore` (Jinja2 files) is the implementation; a test may hand a run any object
    with these methods.
    """

    def messages(self, name: str, variables: Mapping[str, Any] | None = None) -> list[Message]: ...

    def has_block(self, name: str, block: str) -> bool: ...

    def render_block(self, name: str, block: str,
                     variables: Mapping[str, Any] | None = None) -> str: ...


class PromptStore:
    """Loads and renders the templates of a project (and agentflow's built-in ones)."""

    def __init__(self, roots: Sequence[str | Path] | None = None) -> None:
        import jinja2

        from agentflow.prompts.sandbox import sandboxed_environment

        given = [Path(r).resolve() for r in (roots if roots is not None else [Path.cwd()])]
        self.roots: list[Path] = list(dict.fromkeys([*given, BUILTIN_ROOT]))
        self._checked: dict[str, jinja2.Template] = {}
        self.env = sandboxed_environment(
            loader=jinja2.FileSystemLoader([str(r) for r in self.roots]),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )

    @classmethod
    def for_project(cls, root: str | Path = ".") -> PromptStore:
        """The store of the project at ``root`` (plus the built-in templates)."""
        return cls([root])

    def names(self) -> list[str]:
        """Every template under the ``prompts/`` folder of each root (``prompts/...`` paths)."""
        found: set[str] = set()
        for root in self.roots:
            for pattern in ("*.j2", "*.jinja", "*.jinja2"):
                found.update(p.relative_to(root).as_posix() for p in (root / "prompts").rglob(pattern))
        return sorted(found)

    def template(self, name: str) -> jinja2.Template:
        """The compiled template ``name``; a :class:`ConfigError` says where it was looked for,
        a :class:`PromptError` where it is malformed or reaches for what the sandbox refuses."""
        import jinja2

        try:
            template = self.env.get_template(_posix(name))
        except jinja2.TemplateNotFound:
            searched = ", ".join(str(r) for r in self.roots)
            raise ConfigError(
                f"prompt template {name!r} not found under {searched}."
                f"{did_you_mean(name, self.names())}"
            ) from None
        except jinja2.TemplateSyntaxError as exc:
            raise PromptError(f"prompt template {name!r}, line {exc.lineno}: {exc.message}") from exc
        if self._checked.get(name) is not template:  # a changed file is a new template object
            self._checked[name] = template  # first, so templates including each other end
            try:
                self._check_safe(name)
            except ConfigError:
                del self._checked[name]
                raise
        return template

    def _check_safe(self, name: str) -> None:
        """Refuse what the sandbox would refuse while rendering, with the line, before any run;
        the templates it includes or extends are checked too."""
        import jinja2.meta

        from agentflow.prompts.sandbox import unsafe_accesses

        source, _, _ = self.env.loader.get_source(self.env, _posix(name))  # type: ignore[union-attr]
        tree = self.env.parse(source)
        found = unsafe_accesses(tree)
        if found:
            line, attribute = found[0]
            raise PromptError(unsafe_message(_posix(name), line,
                                             f"access to attribute {attribute!r} is not allowed"))
        for other in jinja2.meta.find_referenced_templates(tree):
            if other is not None:  # a name computed while rendering: the sandbox guards it
                self.template(other)

    def variables(self, name: str) -> set[str]:
        """The variables template ``name`` reads from its context (including in its blocks)."""
        import jinja2.meta

        self.template(name)  # a clear error when it is missing or broken
        source, _, _ = self.env.loader.get_source(self.env, _posix(name))  # type: ignore[union-attr]
        return set(jinja2.meta.find_undeclared_variables(self.env.parse(source)))

    def render(self, name: str, variables: Mapping[str, Any] | None = None) -> str:
        """Render the whole template."""
        template = self.template(name)
        with _Explained(name, variables, self.roots):
            return template.render(dict(variables or {})).strip()

    def render_block(self, name: str, block: str, variables: Mapping[str, Any] | None = None) -> str:
        """Render one ``{% block %}`` of a template with ``variables``."""
        template = self.template(name)
        if block not in template.blocks:
            raise ConfigError(
                f"prompt template {name!r} has no block {block!r}; blocks: "
                f"{', '.join(sorted(template.blocks)) or 'none'}"
            )
        with _Explained(name, variables, self.roots):
            context = template.new_context(dict(variables or {}))
            try:
                return "".join(template.blocks[block](context)).strip()
            except Exception:
                self.env.handle_exception()  # re-raises with template lines, as render() does

    def has_block(self, name: str, block: str) -> bool:
        return block in self.template(name).blocks

    def messages(self, name: str, variables: Mapping[str, Any] | None = None) -> list[Message]:
        """System and user messages from the template's blocks (one user message without)."""
        template = self.template(name)
        if not any(b in template.blocks for b in MESSAGE_BLOCKS):
            return [{"role": "user", "content": self.render(name, variables)}]
        out: list[Message] = []
        for block in MESSAGE_BLOCKS:
            if block in template.blocks:
                text = self.render_block(name, block, variables)
                if text:
                    out.append({"role": block, "content": text})  # type: ignore[typeddict-item]
        return out


def _posix(name: str) -> str:
    return Path(name).as_posix().removeprefix("./")


def unsafe_message(file: str, line: int | None, problem: str) -> str:
    where = f"{file}:{line}" if line else file
    return (f"unsafe template at {where}: {problem} (prompt templates run in a sandbox: they "
            "format the values they are given, they cannot reach Python's internals)")


class _Explained:
    """Turns Jinja2's undefined-variable and sandbox errors into errors naming the template."""

    def __init__(self, name: str, variables: Mapping[str, Any] | None,
                 roots: Sequence[Path] = ()) -> None:
        self.name = name
        self.given = sorted(variables or {})
        self.roots = roots

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        import jinja2
        from jinja2.sandbox import SecurityError

        if isinstance(exc, SecurityError):
            from agentflow.prompts.sandbox import template_frame

            file, line = template_frame(exc, self.roots) or (self.name, None)
            raise PromptError(unsafe_message(file, line, exc.message or str(exc))) from exc
        if isinstance(exc, jinja2.UndefinedError):
            raise PromptError(
                f"prompt template {self.name!r}: {exc.message}; variables given: "
                f"{', '.join(self.given) or 'none'}"
            ) from exc
        return False


@lru_cache(maxsize=8)
def _store(root: str) -> PromptStore:
    return PromptStore([root])


def template_variables(name: str, *, root: str | Path = ".") -> set[str]:
    """The variables a template reads, for build-time checks of a workflow's ``variables:``."""
    return _store(str(Path(root).resolve())).variables(name)


def unknown_variables(name: str, given: Sequence[str], *, root: str | Path = ".") -> tuple[set[str], set[str]]:
    """``(missing, unused)``: what the template needs that is not given, and given but unused."""
    needed = template_variables(name, root=root)
    return needed - set(given), set(given) - needed
