"""Run the release-notes flow from Python and print what each shape did, from its events."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from examples.release_notes.flow import flow

INPUTS = json.loads((Path(__file__).parent / "prs.json").read_text())


async def main() -> None:
    async for event in flow.astream(INPUTS):
        data = event.data or {}
        if event.kind == "map_item_finished" and event.status == "error":
            print(f"map {event.name}: item {event.item_index} failed and was collected: {event.error}")
        elif event.kind == "map_finished":
            print(f"map {event.name}: {data['ok']} ok, {data['failed']} failed, at most "
                  f"{data['max_in_flight']} in flight (max_concurrency {data['max_concurrency']})")
        elif event.kind == "branch_finished":
            print(f"parallel {event.name}: branch {event.branch} finished")
        elif event.kind == "loop_pass_finished":
            verdict = "passed" if data["passed"] else "failed"
            print(f"loop {event.name}: pass {event.pass_index} {verdict} ({data['reason']})")
        elif event.kind == "loop_finished":
            print(f"loop {event.name}: stopped ({data['stop_reason']}) after {data['passes']} passes")
        elif event.kind == "run_finished":
            print("\n" + event.data["state"]["notes"])


if __name__ == "__main__":
    asyncio.run(main())
