"""How the contract suites run async code without an async pytest plugin."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class Closing:
    """Something a test opens and the suite must close on the test's event loop afterwards."""

    async def aclose(self) -> None:
        raise NotImplementedError


def run_async(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Turn an ``async def`` test into a plain one that runs it with :func:`asyncio.run`.

    pytest still sees the test's own parameters (fixtures, parametrize) through ``__wrapped__``.
    Fixture values that are :class:`Closing` are closed on the same loop when the test ends,
    whether it passed or not.
    """

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        async def main() -> None:
            try:
                await test(*args, **kwargs)
            finally:
                for value in kwargs.values():
                    if isinstance(value, Closing):
                        await value.aclose()

        asyncio.run(main())

    return wrapper
