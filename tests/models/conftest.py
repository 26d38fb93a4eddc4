"""Fixtures for model tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .support import Recorder, RecordingServer


@pytest.fixture
def http_server() -> Iterator[RecordingServer]:
    server = RecordingServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()
