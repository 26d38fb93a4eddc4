"""What a run returns: the final state and how each loop and map ended."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

StopReason = Literal["passed", "exhausted", "error"]
RunStatus = Literal["ok", "error"]


@dataclass(slots=True)
class Verdict:
    """The verdict of a loop's ``until`` at the end of one pass."""

    pass_index: int
    passed: bool
    reason: str = ""


@dataclass(slots=True)
class LoopOutcome:
    """How the latest execution of a loop ended: how many passes, and why it stopped."""

    name: str
    passes: int = 0
    stop_reason: StopReason | None = None
    verdicts: list[Verdict] = field(default_factory=list)


@dataclass(slots=True)
class MapItemError:
    """A map item that failed under ``on_error="continue"`` or ``"collect"``."""

    map: str
    index: int
    item: Any
    error: str
    error_type: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "map": self.map,
            "index": self.index,
            "item": self.item,
            "error": self.error,
            "error_type": self.error_type,
        }


@dataclass(slots=True)
class RunResult(Mapping[str, Any]):
    """The result of a run. Reads like the final state: ``result["answer"]``.

    ``loops`` maps each loop's name to its latest :class:`LoopOutcome`; ``map_errors`` maps each
    map to the items that failed under ``continue`` or ``collect``.
    """

    run_id: str
    thread_id: str
    state: dict[str, Any]
    status: RunStatus = "ok"
    error: str | None = None
    loops: dict[str, LoopOutcome] = field(default_factory=dict)
    map_errors: dict[str, list[MapItemError]] = field(default_factory=dict)
    nodes_run: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    def __getitem__(self, key: str) -> Any:
        return self.state[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.state)

    def __len__(self) -> int:
        return len(self.state)


def to_jsonable(value: Any) -> Any:
    """Pydantic models, dataclasses and tuples to plain JSON values (a run's state as printed by
    ``agentflow run --output json`` and returned by a served workflow)."""
    if hasattr(value, "model_dump"):
        return to_jsonable(value.model_dump(mode="json"))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict

        return to_jsonable(asdict(value))
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
