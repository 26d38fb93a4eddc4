"""Ask rag.yaml three questions about the handbook; the handbook cannot answer the last one."""

from __future__ import annotations

from pathlib import Path

from agentflow.spec.load import load_workflow

QUESTIONS = (
    "How quickly must the primary engineer acknowledge a page?",
    "Can I deploy on a Friday?",
    "Which programming language does the team use?",
)


def main() -> None:
    workflow = load_workflow(Path(__file__).with_name("rag.yaml"))
    services = workflow.services(progress=False)  # ingests handbook/ on the first run only
    for question in QUESTIONS:
        result = workflow.flow.run({"question": question}, services=services)
        print(f"Q: {question}\nA: {result['answer']}")
        for c in result["citations"]:
            print(f"   [DOC {c['doc']}] {Path(c['source']).name}: {c['quote']}")
        checks = ", ".join(f"{name} {r.outcome} (score {r.score})"
                           for name, r in result["checks"].items())
        print(f"   checks: {checks}\n")


if __name__ == "__main__":
    main()
