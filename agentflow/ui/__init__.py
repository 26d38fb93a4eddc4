"""The trace viewer: ``agentflow ui``, or :func:`agentflow.ui.app.create_app` to mount it yourself.

Needs the ``ui`` extra (FastAPI, uvicorn). Nothing is imported here, so the package imports cheaply.
"""
