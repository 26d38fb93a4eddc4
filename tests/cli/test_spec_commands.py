"""`agentflow validate | graph | schema` and `run FILE.yaml --set`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

WORKFLOW = textwrap.dedent("""\
    version: 1
    name: shout
    inputs:
      text: {type: string}
    outputs: [loud]
    nodes:
      upper: {type: python, function: "mysteps:upper", reads: [text], writes: [loud]}
    flow: [upper]
""")


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentflow.cli", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=120, stdin=subprocess.DEVNULL)


def setup(tmp_path: Path, text: str = WORKFLOW) -> Path:
    (tmp_path / "mysteps.py").write_text("def upper(inputs):\n    return {'loud': inputs['text'].upper()}\n")
    path = tmp_path / "shout.yaml"
    path.write_text(text)
    return path


def test_validate_ok_and_errors_with_file_line_and_exit_code(tmp_path: Path) -> None:
    setup(tmp_path)
    ok = cli(tmp_path, "validate", "shout.yaml", "--allow-module", "mysteps")
    assert ok.returncode == 0 and "shout.yaml: ok (shout: 1 nodes, inputs: text)" in ok.stdout
    bad = cli(tmp_path, "validate", "shout.yaml")  # the module is not allowed
    assert bad.returncode == 3
    assert "shout.yaml:7:" in bad.stderr and "module 'mysteps' is not allowed for python nodes" in bad.stderr
    assert "--allow-module mysteps" in bad.stderr


def test_the_allowlist_in_agentflow_yaml_is_the_one_the_error_suggests(tmp_path: Path) -> None:
    setup(tmp_path)
    bad = cli(tmp_path, "validate", "shout.yaml")
    assert "`python: {allow: [mysteps]}` in the agentflow.yaml" in bad.stderr
    (tmp_path / "agentflow.yaml").write_text("python: {allow: [mysteps]}\n")
    ok = cli(tmp_path, "run", "shout.yaml", "-i", "text=hi", "--output", "json", "-q")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == {"loud": "HI"}
    (tmp_path / "agentflow.yaml").write_text("profile: offline\npython:\n  allow: mysteps\n")
    malformed = cli(tmp_path, "validate", "shout.yaml")
    assert malformed.returncode == 3 and "Traceback" not in malformed.stderr
    assert "agentflow.yaml:3:10 (python.allow): Input should be a valid list (got 'mysteps'); " \
           "expected a list of module names" in malformed.stderr


def test_run_a_yaml_workflow_with_set_and_json_output(tmp_path: Path) -> None:
    setup(tmp_path)
    proc = cli(tmp_path, "run", "shout.yaml", "--allow-module", "mysteps", "-i", "text=hi",
               "--set", "outputs=[loud, text]", "--output", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"loud": "HI", "text": "hi"}


def test_a_collection_that_cannot_be_ingested_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    proc = cli(tmp_path, "run", str(ROOT / "graphs" / "agentic_rag.yaml"), "-i", "question=hi",
               "--set", f"collections.knowledge.source={tmp_path / 'missing'}")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("agentflow: cannot prepare the run: cannot ingest")
    assert "missing" in proc.stderr


def test_a_profile_lacking_an_alias_fails_at_the_node_that_names_it(tmp_path: Path) -> None:
    (tmp_path / "agentflow.yaml").write_text(
        "models:\n  profiles:\n    tiny:\n      aliases:\n        large: offline/extractive\n")
    proc = cli(tmp_path, "run", str(ROOT / "graphs" / "agentic_rag.yaml"), "-i", "question=hi",
               "--profile", "tiny")
    assert proc.returncode == 3, proc.stderr
    assert "agentic_rag.yaml:" in proc.stderr and "Unknown model alias 'small'" in proc.stderr


def test_graph_as_mermaid_and_svg(tmp_path: Path) -> None:
    setup(tmp_path)
    mermaid = cli(tmp_path, "graph", "shout.yaml", "--allow-module", "mysteps")
    assert mermaid.returncode == 0
    assert mermaid.stdout.startswith("flowchart TD\n")
    assert 'upper["upper<br/><i>python</i>"]' in mermaid.stdout
    assert "__start__ --> upper" in mermaid.stdout and "upper --> __end__" in mermaid.stdout
    svg = cli(tmp_path, "graph", "shout.yaml", "--allow-module", "mysteps", "--format", "svg",
              "-o", "shout.svg")
    assert svg.returncode == 0
    text = (tmp_path / "shout.svg").read_text()
    assert text.startswith("<svg") and 'data-name="upper"' in text and "http://" not in text.replace(
        "http://www.w3.org/2000/svg", "")


def test_schema_matches_the_committed_graphs_schema() -> None:
    proc = cli(ROOT, "schema")
    assert proc.returncode == 0
    committed = (ROOT / "graphs" / "schema.json").read_text()
    assert json.loads(proc.stdout) == json.loads(committed), (
        "graphs/schema.json is out of date: regenerate it with `agentflow schema -o graphs/schema.json`")
    schema = json.loads(proc.stdout)
    assert schema["title"] == "agentflow workflow"
    assert "max_iterations" in schema["$defs"]["LoopBody"]["required"]


def test_every_graph_starts_with_the_schema_comment() -> None:
    for path in sorted((ROOT / "graphs").glob("*.yaml")):
        first = path.read_text().splitlines()[0]
        assert first == "# yaml-language-server: $schema=schema.json", path.name
