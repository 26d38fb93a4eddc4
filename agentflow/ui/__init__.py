"""agentflow.ui."""
