"""examples/custom_node: node types registered in Python, used from a YAML workflow."""

from __future__ import annotations

import json

from .support import ROOT, run

ALLOW = ("--allow-module", "examples.custom_node.nodes")
WORKFLOW = str(ROOT / "examples" / "custom_node" / "ticket.yaml")
TICKET = "I was charged twice on card 4111 1111 1111 1111, call +44 20 7946 0958 or mail ana@example.com."


def test_the_custom_nodes_redact_the_ticket_before_it_is_tagged_and_routed() -> None:
    proc = run("-m", "agentflow.cli", "run", WORKFLOW, *ALLOW,
               "-i", f"ticket={TICKET}", "--output", "json", "-q")
    assert proc.returncode == 0, proc.stderr
    state = json.loads(proc.stdout)
    assert state["clean"] == "I was charged twice on card [card], call [phone] or mail [email]."
    assert state["redactions"] == {"card": 1, "email": 1, "phone": 1}
    assert state["topic"] == "billing"
    assert state["answer"].startswith("Thanks - the billing team")


def test_the_workflow_needs_its_module_allowed_and_rejects_bad_config() -> None:
    denied = run("-m", "agentflow.cli", "validate", WORKFLOW)
    assert denied.returncode == 3 and "unknown node type 'redact'" in denied.stderr
    bad = run("-m", "agentflow.cli", "validate", WORKFLOW, *ALLOW,
              "--set", "nodes.scrub.kinds=[mail]")
    assert bad.returncode == 3
    assert "(nodes.scrub.kinds[0]): Input should be 'card', 'email' or 'phone'" in bad.stderr


def test_the_script_shows_the_custom_event_of_the_redact_node() -> None:
    proc = run("-m", "examples.custom_node.run")
    assert proc.returncode == 0, proc.stderr
    assert "custom event 'redacted' from scrub: {'card': 1, 'email': 1, 'phone': 1}" in proc.stdout
    assert "topic: billing" in proc.stdout
