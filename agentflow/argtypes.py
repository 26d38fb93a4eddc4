"""Argument types the ``agentflow`` commands share (argparse ``type=`` callables; standard library only, so
``agentflow --help`` stays fast)."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """A whole number of at least 1, or an argparse error that says what was given."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)
