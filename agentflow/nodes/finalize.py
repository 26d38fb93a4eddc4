"""The ``finalize`` node: what to say when a check loop ends without passing.

.. code-block:: yaml

    finalize: {type: finalize, answer: answer, verdict: verdict, policy: caveat}

After a loop that retries an answer until its checks pass, the loop may stop exhausted. Then the
answer either goes out with a caveat that names the checks it failed (``caveat``), or is replaced
by an abstention (``abstain``). A passing answer is left as it is. The node also writes
``answer_status``: ``passed``, ``caveat`` or ``abstained``.

An answer that abstains is ``abstained``, never caveated: rightly when its verdict passed on it
(the checks found that the documents lack the answer, see :mod:`agentflow.checks.abstention`),
and also when the loop ended on one it judged wrong (a caveat on "I don't know" says nothing;
the trace keeps the failing verdict).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from agentflow.checks import is_abstention
from agentflow.graph.context import RunContext
from agentflow.graph.registry import NodeConfig, node
from agentflow.nodes.llm import read_state


class FinalizeConfig(NodeConfig):
    answer: str = "answer"
    """State field with the answer (read, and rewritten when the checks failed)."""
    verdict: str = "verdict"
    """State field with the combined verdict of the checks (a ``verdict`` node's output)."""
    policy: Literal["caveat", "abstain"] = "caveat"
    """What to do with an answer whose checks failed."""
    abstain_text: str = "I could not find a reliable answer to this in the documents."
    """The reply under ``policy: abstain``."""
    status_output: str = "answer_status"
    """State field written with passed, caveat or abstained."""


def _passed_and_reason(verdict: Any) -> tuple[bool, str, bool]:
    """``(passed, reason, abstained)`` of a verdict, a restored one (a mapping) or a boolean."""
    if verdict is None:
        return False, "the answer was not checked", False
    if isinstance(verdict, Mapping):
        return (bool(verdict.get("passed")), str(verdict.get("reason") or ""),
                bool(verdict.get("abstained")))
    return (bool(getattr(verdict, "passed", verdict)), str(getattr(verdict, "reason", "") or ""),
            bool(getattr(verdict, "abstained", False)))


@node("finalize", reads=lambda c: (c.answer, c.verdict),
      writes=lambda c: (c.answer, c.status_output))
async def finalize(state: Any, cfg: FinalizeConfig, ctx: RunContext[Any]) -> dict[str, Any]:
    """Keep a checked answer; add a caveat to (or abstain from) one that failed its checks."""
    answer = str(read_state(state, cfg.answer, ctx.node) or "")
    passed, reason, abstained = _passed_and_reason(read_state(state, cfg.verdict, ctx.node))
    if abstained or (answer.strip() and is_abstention(answer)):
        return {cfg.answer: answer, cfg.status_output: "abstained"}
    if passed:
        return {cfg.answer: answer, cfg.status_output: "passed"}
    if cfg.policy == "abstain" or not answer.strip():
        return {cfg.answer: cfg.abstain_text, cfg.status_output: "abstained"}
    caveat = f"Caveat: this answer did not pass all of its checks ({reason or 'no reason given'})."
    return {cfg.answer: f"{answer}\n\n{caveat}", cfg.status_output: "caveat"}
