"""agentflow.prompts."""
