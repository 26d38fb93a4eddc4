"""Release notes from pull request titles: a map, parallel branches and a bounded loop.

Run it:  agentflow run examples.release_notes.flow:flow --input-json @examples/release_notes/prs.json

1. map: label every title (``feat: ...``, ``fix: ...``) at most 3 at a time; a title without a
   known prefix fails alone and is collected in ``rejected`` (``on_error="collect"``).
2. parallel: the features section and the fixes section are written at the same time.
3. loop: an editor shortens the notes until they fit ``limit`` characters, at most 3 passes; each
   pass's verdict says why it passed or failed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

import agentflow as af

KINDS = {"feat": "Features", "fix": "Fixes"}


class Notes(BaseModel):
    titles: list[str]
    limit: int = 200
    title: str = ""
    entry: dict[str, str] = {}
    entries: list[dict[str, str]] = []
    rejected: list[dict[str, Any]] = []
    features: str = ""
    fixes: str = ""
    notes: str = ""
    edits: int = 0


@af.node("label_pr", reads=("title",), writes=("entry",))
async def label_pr(state: Notes, cfg: af.NodeConfig, ctx: af.RunContext) -> dict[str, Any]:
    """Split a title into its kind and its text; a title without a known kind fails."""
    await asyncio.sleep(0.05)  # stands in for a model call, so that the items overlap
    kind, sep, text = state.title.partition(":")
    if not sep or kind.strip() not in KINDS:
        raise ValueError(f"no known kind ({', '.join(KINDS)}) before ':' in {state.title!r}")
    return {"entry": {"kind": kind.strip(), "text": text.strip()}}


class SectionConfig(af.NodeConfig):
    kind: Literal["feat", "fix"]
    """Which entries go into the section."""
    output: str
    """The state field the section is written to."""


@af.node("section", reads=("entries",), writes=lambda c: (c.output,))
async def section(state: Notes, cfg: SectionConfig, ctx: af.RunContext) -> dict[str, Any]:
    """Write one section of the notes from the entries of one kind."""
    await asyncio.sleep(0.05)
    lines = [f"- {e['text']}" for e in state.entries if e["kind"] == cfg.kind]
    return {cfg.output: f"{KINDS[cfg.kind]}:\n" + "\n".join(lines) if lines else ""}


@af.node("edit", reads=("features", "fixes", "edits"), writes=("notes", "edits"))
async def edit(state: Notes, cfg: af.NodeConfig, ctx: af.RunContext) -> dict[str, Any]:
    """Join the sections; every later pass keeps fewer words of each line."""
    words = (None, 6, 3)[min(state.edits, 2)]
    lines = []
    for line in "\n".join(s for s in (state.features, state.fixes) if s).splitlines():
        parts = line.split()
        if words and line.startswith("- ") and len(parts) > words + 1:
            line = " ".join(parts[: words + 1]) + " ..."
        lines.append(line)
    return {"notes": "\n".join(lines), "edits": state.edits + 1}


@dataclass
class Check:
    passed: bool
    reason: str


def fits(state: Notes) -> Check:
    """The loop's `until`: a verdict with the reason the trace and the result show."""
    size = len(state.notes)
    return Check(size <= state.limit, f"{size} characters, limit {state.limit}")


flow = af.Flow(
    "release_notes",
    state=Notes,
    inputs=("titles", "limit"),
    steps=[
        af.map(over="titles", item="title", node=label_pr, into="entries", max_concurrency=3,
               on_error="collect", errors="rejected", name="label_all"),
        af.parallel(section("features", kind="feat", output="features"),
                    section("fixes", kind="fix", output="fixes"), name="sections"),
        af.loop(edit, until=fits, max_iterations=3, name="shorten"),
    ],
)
