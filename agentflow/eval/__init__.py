"""Evaluation: run a workflow over a dataset and score it (answers, retrieval, citations, checks,
abstention, routing, latency, tokens, cost), resumably, with a self-contained HTML report.

Names load on first use, so ``agentflow --help`` does not import the engine.
"""

from __future__ import annotations

from agentflow._lazy import lazy_exports

_EXPORTS = {
    "Dataset": "agentflow.eval.formats",
    "DatasetError": "agentflow.eval.formats",
    "FORMATS": "agentflow.eval.formats",
    "Gold": "agentflow.eval.formats",
    "Item": "agentflow.eval.formats",
    "load_dataset": "agentflow.eval.formats",
    "Outcome": "agentflow.eval.evaluate",
    "evaluate": "agentflow.eval.evaluate",
    "evaluate_prepared": "agentflow.eval.evaluate",
    "prepared_flow": "agentflow.eval.evaluate",
    "RunOptions": "agentflow.eval.runner",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
