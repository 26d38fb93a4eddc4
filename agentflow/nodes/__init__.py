"""agentflow.nodes."""
