"""The whole exception hierarchy of agentflow.

Every error says what went wrong, where, and what would be valid. Third-party exceptions are
translated into these in the one module that imports the library they come from.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any


class AgentflowError(Exception):
    """Root of every error agentflow raises on purpose."""


class ConfigError(AgentflowError):
    """A setting is missing or invalid (a profile, an alias, a service that is not configured)."""


class PromptError(ConfigError):
    """A prompt template is missing, malformed, or does what templates may not (its sandbox
    refuses attributes such as ``__class__``); the message names the file and line."""


class GraphBuildError(AgentflowError):
    """A flow cannot be compiled: the message names the step and what would be valid."""

    def __init__(self, message: str, *, step: str | None = None) -> None:
        super().__init__(message)
        self.step = step


class SpecError(AgentflowError):
    """A YAML workflow is invalid at a known file, line and YAML path."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        path: str | None = None,
    ) -> None:
        where = ""
        if file is not None:
            where = file
            if line is not None:
                where += f":{line}"
                if column is not None:
                    where += f":{column}"
        if path:
            where = f"{where} ({path})" if where else f"({path})"
        super().__init__(f"{where}: {message}" if where else message)
        self.file, self.line, self.column, self.path = file, line, column, path
        self.detail = message


class SpecErrors(SpecError):
    """Every problem found in one workflow, reported at once, one per line (each with its file,
    line and column). ``problems`` holds them; ``total`` counts those past the cap as well.
    The location attributes are the first problem's."""

    def __init__(self, problems: Sequence[SpecError], *, total: int | None = None) -> None:
        first = problems[0]
        self.problems, self.total = list(problems), max(total or 0, len(problems))
        lines = [str(p) for p in self.problems]
        if self.total > len(lines):
            lines.append(f"... {self.total - len(lines)} more problem(s) not shown "
                         f"(--max-errors {self.total} shows them all)")
        Exception.__init__(self, "\n".join(lines))
        self.file, self.line, self.column = first.file, first.line, first.column
        self.path = first.path
        self.detail = first.detail

    @classmethod
    def combine(cls, problems: Sequence[SpecError], *, limit: int | None = None) -> SpecError:
        """One error for ``problems`` (at most ``limit`` shown): the problem itself when alone."""
        if len(problems) == 1:
            return problems[0]
        shown = problems[:limit] if limit else problems
        return cls(shown, total=len(problems))


class NodeError(AgentflowError):
    """A node failed while running. Raised ``from`` the original exception.

    ``result`` holds the partial :class:`~agentflow.graph.result.RunResult` of the failed run when
    the failure ended a run (loop outcomes with stop reason ``error``, finished nodes, errors).
    """

    def __init__(self, message: str, *, node: str, run_id: str | None = None) -> None:
        super().__init__(message)
        self.node = node
        self.run_id = run_id
        self.result: Any = None


class RouteError(NodeError):
    """A route produced a label that has no case and no default."""


class InputError(AgentflowError):
    """The input given to a run does not fit the flow's state schema or declared inputs."""


class UsageError(Exception):
    """Bad command-line input: the ``agentflow`` command prints it and exits with code 2."""


class ModelError(AgentflowError):
    """A model call failed: timeout, provider unavailable, or output that does not validate."""


class RetrievalError(AgentflowError):
    """Ingestion or search failed (store unavailable, bad collection, unreadable file)."""


class UnreadableDocumentError(RetrievalError):
    """A file's content cannot be turned into text (a corrupt PDF, binary data in a text file):
    ingestion skips such a file with a warning that names it, and ingests the rest."""


class CheckFailed(AgentflowError):
    """A check with severity ``fail`` did not pass."""


def did_you_mean(name: str, options: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest option, or an empty string."""
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def known(options: Iterable[str]) -> str:
    """Format a set of valid names for a message: ``'a', 'b', 'c'`` (or ``none``)."""
    names = sorted(set(options))
    return ", ".join(repr(n) for n in names) if names else "none"


EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BUILD = 0, 1, 2, 3
"""The ``agentflow`` commands' exit statuses: ok, failed, bad usage or configuration, a workflow
that does not build."""


def report_setup_error(exc: AgentflowError, doing: str) -> int:
    """Say on stderr why a command could not set itself up, and return its exit status: a workflow
    that does not build (3), a configuration error (2), or anything else that stopped ``doing`` (1:
    a collection that cannot be ingested, a database that cannot be reached, ...)."""
    import sys

    if isinstance(exc, GraphBuildError | SpecError):
        print(f"agentflow: workflow does not build: {exc}", file=sys.stderr)
        return EXIT_BUILD
    if isinstance(exc, ConfigError):
        print(f"agentflow: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"agentflow: {doing}: {exc}", file=sys.stderr)
    return EXIT_FAILED
