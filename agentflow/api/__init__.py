"""Serving workflows over HTTP: ``agentflow serve FILE.yaml``.

- :mod:`agentflow.api.app`: the FastAPI app (runs, streams, threads, feedback, the trace of a run);
- :mod:`agentflow.api.chat`: the OpenAI-compatible ``/v1/chat/completions``, where ``model`` names a
  workflow;
- :mod:`agentflow.api.workflows`: loading the served workflows and their services, once per worker;
- :mod:`agentflow.api.threads`: conversations and resumable runs on LangGraph's checkpointers
  (SQLite by default, PostgreSQL with ``--checkpoint postgresql://...``);
- :mod:`agentflow.api.variants`: A/B tests whose variants differ only in their model mapping;
- :mod:`agentflow.api.abreport`: ``agentflow ab report``, the variants compared with significance;
- :mod:`agentflow.api.records`: runs and feedback in PostgreSQL too, for machines that share no trace store;
- :mod:`agentflow.api.server`: uvicorn, in the foreground with K workers or on a thread (tests).

FastAPI and uvicorn come with the ``serve`` extra (``pip install 'agentflow[serve]'``).
"""
