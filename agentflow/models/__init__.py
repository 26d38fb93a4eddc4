"""agentflow.models."""
