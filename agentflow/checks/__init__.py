"""agentflow.checks."""
