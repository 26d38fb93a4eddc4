"""Check kinds, registered: a name, an options model, a default threshold, the inputs it reads and
an async function. The ``check`` node, :func:`~agentflow.checks.run_check`, the YAML schema and the
YAML reference all read this registry, so adding a check is one module and its registration.

.. code-block:: python

    from agentflow.checks import CheckCall, CheckOptions, CheckResult, register_check

    class LengthOptions(CheckOptions):
        max_words: int = 80
        \"\"\"Longest answer that passes.\"\"\"

    @register_check("length", options=LengthOptions, default_threshold=1.0, reads=("answer",))
    async def length(call: CheckCall, options: LengthOptions) -> CheckResult:
        \"\"\"Answers of at most ``max_words`` words pass.\"\"\"
        words = len(call.answer.split())
        return call.result(score=float(words <= options.max_words),
                           reason=f"{words} words (at most {options.max_words})")

Then ``{type: check, kind: length, max_words: 50}`` is a node of a YAML workflow (the module that
registers it must be imported first: ``--allow-module`` on the command line). The built-in kinds
register in their own modules: ``citations``, ``faithfulness`` and ``relevancy`` (:mod:`.ragas`),
``self_consistency`` (:mod:`.consistency`) and ``attribution``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from agentflow.checks.result import AbstentionPolicy, CheckResult, Severity
from agentflow.documents import Chunk
from agentflow.errors import ConfigError, did_you_mean, known

if TYPE_CHECKING:
    from agentflow.checks.judge import Judge

CheckInput = Literal["question", "answer", "documents", "samples"]
"""What a check may read; the ``check`` node maps each to the state field its config names."""
CHECK_INPUTS: tuple[CheckInput, ...] = ("question", "answer", "documents", "samples")


class CheckOptions(BaseModel):
    """Base of a check kind's options: the fields of a ``check`` node that only this kind has.
    Unknown keys are errors; attribute docstrings become the YAML reference's descriptions."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


@dataclass(frozen=True)
class CheckCall:
    """One run of a check: what it checks, the judge, and how its result is named and held.

    ``scorer`` is a prompt scorer (:class:`~agentflow.models.logprobs.PromptScorer`) that replaces
    the judge's alias where a check scores prompts (``attribution``); ``None`` for the judge's.
    """

    kind: str
    name: str
    judge: Judge
    threshold: float
    severity: Severity = "fail"
    abstention: AbstentionPolicy = "fail"
    answer: str = ""
    question: str = ""
    documents: Sequence[Chunk] = ()
    samples: Sequence[str] | None = None
    scorer: Any = None

    def result(self, *, score: float | None, reason: str, passed: bool | None = None,
               details: Mapping[str, Any] | None = None, error: str | None = None) -> CheckResult:
        """A :class:`CheckResult` of this call; ``passed`` defaults to ``score >= threshold``."""
        if passed is None:
            passed = error is None and score is not None and score >= self.threshold
        return CheckResult(name=self.name, kind=self.kind, score=score, passed=passed,
                           threshold=self.threshold, reason=reason, details=dict(details or {}),
                           severity=self.severity, error=error)


O = TypeVar("O", bound=CheckOptions)
CheckFn = Callable[[CheckCall, O], Awaitable[CheckResult]]
Threshold = float | Callable[["Judge"], float]
OutputFn = Callable[[CheckResult, CheckCall], Any]


@dataclass(frozen=True)
class RegisteredCheck(Generic[O]):
    """A registered check kind (see the module docstring)."""

    name: str
    run: CheckFn[O]
    options: type[O]
    default_threshold: Threshold
    """The threshold when a config gives none, or a function of the judge that returns it (a
    judge whose scores have another scale gets another default)."""
    reads: tuple[CheckInput, ...]
    """The inputs the check needs, in the order the node reports them."""
    description: str = ""
    judges_abstention: bool = True
    """Whether the abstention policy ``support`` applies: the judge decides whether an answer
    that abstains was right (not for checks of samples, which have no single answer)."""
    outputs: Mapping[str, OutputFn] = field(default_factory=dict)
    """Option fields that name another state field the node writes, and how its value is made
    from the result (``citations_output``: the resolved citations)."""

    def threshold_for(self, judge: Judge | None) -> float:
        """The default threshold for this judge."""
        if callable(self.default_threshold):
            if judge is None:
                raise ConfigError(f"check kind {self.name!r}: its default threshold depends on "
                                  "the judge; pass a judge or a threshold")
            return self.default_threshold(judge)
        return float(self.default_threshold)

    def threshold_text(self) -> str:
        """The default threshold in words (a function of the judge: its docstring)."""
        if callable(self.default_threshold):
            return _summary(self.default_threshold)
        return f"{float(self.default_threshold):g}"

    def make_options(self, values: Mapping[str, Any] | O | None = None) -> O:
        """The options of this kind from plain values (a node's extra fields, keyword arguments);
        a field this kind does not have is an error that names the fields it has."""
        if isinstance(values, self.options):
            return values
        try:
            return self.options.model_validate(dict(values or {}))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "options"
            what = ("is not a field of this kind" if err["type"] == "extra_forbidden"
                    else err["msg"])
            raise ConfigError(f"check kind {self.name!r}: {where}: {what}; its own fields: "
                              f"{known(self.options.model_fields)}") from exc

    def writes(self, options: CheckOptions) -> tuple[str, ...]:
        """The extra state fields a node of this kind writes, as its options name them."""
        return tuple(f for f in (getattr(options, o) for o in self.outputs) if f)


class CheckRegistry:
    """Check kinds by name. The global one, :data:`check_kinds`, is what the ``check`` node uses."""

    def __init__(self) -> None:
        self._kinds: dict[str, RegisteredCheck[Any]] = {}

    def register(self, kind: RegisteredCheck[Any]) -> RegisteredCheck[Any]:
        """Add a kind; registering another function under a taken name is an error."""
        unknown = [i for i in kind.reads if i not in CHECK_INPUTS]
        if unknown:
            raise ConfigError(f"check kind {kind.name!r} reads {unknown}; valid inputs: "
                              f"{known(CHECK_INPUTS)}")
        existing = self._kinds.get(kind.name)
        if existing is not None and _qualname(existing.run) != _qualname(kind.run):
            raise ConfigError(f"check kind {kind.name!r} is already registered by "
                              f"{_qualname(existing.run)}; choose another name for "
                              f"{_qualname(kind.run)}")
        self._kinds[kind.name] = kind
        return kind

    def get(self, name: str) -> RegisteredCheck[Any]:
        """The kind ``name``; an unknown name is an error that lists the registered ones."""
        try:
            return self._kinds[name]
        except KeyError:
            raise ConfigError(f"unknown check kind {name!r}.{did_you_mean(name, self._kinds)} "
                              f"Registered: {known(self._kinds)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def __iter__(self) -> Iterator[RegisteredCheck[Any]]:
        return iter(self._kinds.values())

    def names(self) -> list[str]:
        return sorted(self._kinds)


check_kinds = CheckRegistry()
"""The global registry: the built-in check kinds and every :func:`register_check`."""


def register_check(
    name: str,
    *,
    default_threshold: Threshold,
    reads: Sequence[CheckInput],
    options: type[CheckOptions] = CheckOptions,
    judges_abstention: bool = True,
    outputs: Mapping[str, OutputFn] | None = None,
    registry: CheckRegistry | None = None,
) -> Callable[[CheckFn[Any]], CheckFn[Any]]:
    """Register the decorated async function as the check kind ``name`` (see the module
    docstring); the function's docstring describes the kind in the YAML reference."""

    def decorate(fn: CheckFn[Any]) -> CheckFn[Any]:
        (registry or check_kinds).register(RegisteredCheck(
            name=name, run=fn, options=options, default_threshold=default_threshold,
            reads=tuple(reads), description=_summary(fn),
            judges_abstention=judges_abstention, outputs=dict(outputs or {})))
        return fn

    return decorate


def _summary(fn: Callable[..., Any]) -> str:
    """The first paragraph of a docstring, on one line."""
    return " ".join((fn.__doc__ or "").strip().split("\n\n")[0].split())


def _qualname(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


__all__ = ["CHECK_INPUTS", "CheckCall", "CheckInput", "CheckOptions", "CheckRegistry",
           "RegisteredCheck", "check_kinds", "register_check"]
