"""Run ticket.yaml from Python: register the node types, load the workflow, stream a run."""

from __future__ import annotations

import asyncio
from pathlib import Path

import examples.custom_node.nodes  # noqa: F401  (registers the node types redact and tag)
from agentflow.spec.load import load_workflow

TICKET = ("I was charged twice for invoice 1042, card 4111 1111 1111 1111. "
          "Call me on +44 20 7946 0958 or write to ana@example.com.")


async def main() -> None:
    workflow = load_workflow(Path(__file__).with_name("ticket.yaml"))
    async for event in workflow.flow.astream({"ticket": TICKET}):
        if event.kind == "custom":
            print(f"custom event {event.name!r} from {event.parent_id.rsplit(':', 1)[-1]}: {event.data}")
        elif event.kind == "route":
            print(f"route {event.name}: {event.data}")
        elif event.kind == "run_finished":
            state = event.data["state"]
            for key in ("clean", "topic", "answer"):
                print(f"{key}: {state[key]}")


if __name__ == "__main__":
    asyncio.run(main())
