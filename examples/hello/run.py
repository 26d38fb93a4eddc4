"""Run the hello flow from Python, streaming its events."""

from __future__ import annotations

import asyncio

from examples.hello.flow import flow


async def main() -> None:
    async for event in flow.astream({"message": "What are a loop and a map?"}):
        where = f" pass {event.pass_index}" if event.pass_index else ""
        where += f" item {event.item_index}" if event.item_index is not None else ""
        print(f"{event.kind:<20} {event.name}{where}")
        if event.kind == "run_finished":
            print("reply:", event.data["state"]["reply"])


if __name__ == "__main__":
    asyncio.run(main())
