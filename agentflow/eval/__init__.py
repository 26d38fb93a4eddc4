"""agentflow.eval."""
