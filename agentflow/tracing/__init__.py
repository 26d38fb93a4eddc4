"""agentflow.tracing."""
