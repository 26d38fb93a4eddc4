"""agentflow.retrieval."""
