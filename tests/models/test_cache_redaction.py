"""The response cache stores requests and responses redacted, and still replays them by key."""

from __future__ import annotations

from pathlib import Path

from agentflow.models import ResponseCache
from agentflow.testing.models import FakeChatModel, FakeRouter

KEY = "sk-proj-Qw3rty0123456789abcdefXYZ"
ECHOED = "Bearer ZWNob2VkLWNyZWRlbnRpYWwtdmFsdWU"


def _stored(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(path.parent.glob(f"{path.name}*")))


async def test_a_recorded_call_keeps_no_credential_and_replays_redacted(tmp_path: Path) -> None:
    path = tmp_path / "model_cache.db"
    messages = [{"role": "user", "content": f"my key is {KEY}; what does the server say?"}]
    writer = FakeRouter({"m": FakeChatModel([f"the server echoed {ECHOED}"])},
                        cache=ResponseCache(path, "write"))
    assert ECHOED in (await writer.complete("m", messages)).text  # the live answer is untouched
    writer.cache.close()
    stored = _stored(path)
    assert KEY.encode() not in stored and ECHOED.split()[1].encode() not in stored
    assert b"[REDACTED]" in stored

    replayer = FakeRouter({"m": FakeChatModel([])}, cache=ResponseCache(path, "replay"))
    replayed = await replayer.complete("m", messages)  # the key is the request as sent
    assert replayed.text == "the server echoed [REDACTED]"


async def test_a_lone_surrogate_in_a_prompt_is_cached_instead_of_failing_the_call(
        tmp_path: Path) -> None:
    path = tmp_path / "model_cache.db"
    router = FakeRouter({"m": FakeChatModel(["ok \udcff"])}, cache=ResponseCache(path, "write"))
    messages = [{"role": "user", "content": "hello \udcff"}]
    assert (await router.complete("m", messages)).text == "ok \udcff"
    assert len(router.cache) == 1
    assert (await router.complete("m", messages)).text == "ok \ufffd"  # served from the cache
    assert "hello \ufffd".encode() in _stored(path)
