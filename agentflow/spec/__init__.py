"""agentflow.spec."""
