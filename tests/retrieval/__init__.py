"""Tests of agentflow.retrieval."""
