"""The ``agentflow`` command.

Exit codes, for scripts: 0 success; 1 the run failed (a node, model or retrieval error); 2 bad
usage or bad input (unknown option, malformed ``--input``, input that does not fit the state);
3 the workflow does not build (an import, a spec or a graph error).

Only the standard library is imported at start-up so that ``agentflow --help`` stays fast; each
command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from agentflow.argtypes import positive_int
from agentflow.errors import EXIT_BUILD, EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError, report_setup_error


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.handler(args))
    except UsageError as exc:
        print(f"agentflow: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("agentflow: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    """The ``agentflow`` console script: :func:`main`, then :func:`exit_now`."""
    exit_now(main())


def exit_now(code: int) -> NoReturn:
    """Exit without the interpreter tearing down every module.

    Once LangGraph, pydantic and numpy are loaded, that teardown takes about half a second here,
    a sixth of a warm ``agentflow run``. The exit handlers still run first (the trace store
    writes what it buffered, embedded Qdrant closes its shards, logging flushes) and the standard
    streams are flushed. Where a non-daemon thread is still running, or the interpreter has no
    ``atexit._run_exitfuncs``, this is a plain ``SystemExit``.
    """
    import atexit
    import os
    import threading

    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    main_thread = threading.main_thread()
    busy = [t for t in threading.enumerate()
            if t is not main_thread and not t.daemon and t.is_alive()]
    if run_exit_handlers is None or busy:
        raise SystemExit(code)
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be written anyway
            pass
    os._exit(code)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentflow",
        description="Agentic RAG workflows as graphs: run, inspect and evaluate them, offline.",
        epilog="exit codes: 0 ok, 1 run failed, 2 bad usage or input, 3 workflow does not build",
    )
    parser.add_argument("--version", action="version", version=f"agentflow {_version()}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_run(sub)
    _add_validate(sub)
    _add_graph(sub)
    _add_schema(sub)
    from agentflow.eval import cli as eval_cli
    from agentflow.models import cli as models_cli
    from agentflow.retrieval import cli as ingest_cli
    from agentflow.model_server import cli as node_cli
    from agentflow.tracing import cli as traces_cli
    from agentflow.ui import cli as ui_cli

    eval_cli.add_parser(sub)
    ingest_cli.add_parser(sub)
    models_cli.add_parser(sub)
    node_cli.add_parser(sub)
    traces_cli.add_parser(sub)
    ui_cli.add_parser(sub)
    importlib.import_module("agentflow.api.cli").add_parser(sub)  # serve, ab
    importlib.import_module("agentflow.tune.cli").add_parser(sub)  # tune
    return parser


def _version() -> str:
    from agentflow import __version__

    return __version__


# run -------------------------------------------------------------------------------------------
def _add_run(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="run a workflow",
        description="Run a workflow: a YAML file, or module:attr (a Flow, or a function "
        "returning one).",
    )
    p.add_argument("target", help="graphs/agentic_rag.yaml, or module:attr")
    p.add_argument("-i", "--input", action="append", default=[], metavar="KEY=VALUE",
                   help="an input field (repeatable); VALUE is parsed as JSON when it is JSON")
    p.add_argument("--input-json", metavar="JSON|@FILE",
                   help="all inputs as a JSON object, inline or @path/to/file.json")
    p.add_argument("--output", choices=("text", "json"), default="text",
                   help="json: the final state as one JSON line on stdout")
    p.add_argument("--thread-id", help="checkpoint thread id (with --checkpoint)")
    p.add_argument("--checkpoint", metavar="PATH",
                   help="SQLite file for durable runs; with --resume, continue a failed run")
    p.add_argument("--resume", action="store_true", help="resume the failed run of --thread-id")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("-t", "--tag", action="append", default=[], metavar="KEY=VALUE",
                   help="a tag recorded with the run's trace (repeatable), e.g. experiment=v2")
    _add_spec_options(p)
    from agentflow.models.cli import add_profile_argument

    add_profile_argument(p)
    p.set_defaults(handler=cmd_run)


def _add_spec_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="append", default=[], metavar="DOTTED.PATH=VALUE",
                   dest="overrides", help="override a field of a YAML workflow for this run "
                   "(e.g. collections.knowledge.source=./my-docs)")
    p.add_argument("--allow-module", action="append", default=[], metavar="MODULE",
                   help="let the workflow use node types and python functions from MODULE")
    p.add_argument("--max-errors", type=positive_int, default=20, metavar="N",
                   help="list at most N problems of a workflow that does not build (20)")


def _add_validate(sub: Any) -> None:
    p = sub.add_parser("validate", help="check a YAML workflow without running it",
                       description="Check a YAML workflow: schema, node types, names, the graph.")
    p.add_argument("file")
    _add_spec_options(p)
    p.set_defaults(handler=cmd_validate)


def _add_graph(sub: Any) -> None:
    p = sub.add_parser("graph", help="draw a workflow (Mermaid or SVG), offline",
                       description="Draw a workflow's declared graph.")
    p.add_argument("file", help="a YAML workflow, or module:attr")
    p.add_argument("--format", choices=("mermaid", "svg"), default="mermaid")
    p.add_argument("-o", "--out", help="write to this file instead of stdout")
    _add_spec_options(p)
    p.set_defaults(handler=cmd_graph)


def _add_schema(sub: Any) -> None:
    p = sub.add_parser("schema", help="print the JSON Schema of YAML workflows",
                       description="Print the JSON Schema that editors use to check workflows.")
    p.add_argument("-o", "--out", help="write to this file instead of stdout")
    p.add_argument("--format", choices=("json", "markdown"), default="json",
                   help="json: the JSON Schema (graphs/schema.json); markdown: the YAML reference "
                        "(docs/reference/yaml.md)")
    p.add_argument("--allow-module", action="append", default=[], metavar="MODULE",
                   help="include node types registered by MODULE")
    p.set_defaults(handler=cmd_schema)


def load_target(args: argparse.Namespace) -> Any:
    """The Flow of a YAML file or a module:attr, with the user's allowed modules loaded."""
    return load_workflow_or_flow(args)[0]


def load_workflow_or_flow(args: argparse.Namespace) -> tuple[Any, Any]:
    """``(flow, workflow)``: the workflow is the loaded YAML spec, or None for module:attr."""
    from agentflow.nodes.python import allow_modules
    from agentflow.spec.load import import_allowed, load_workflow
    from agentflow.spec.targets import is_yaml

    allowed = list(getattr(args, "allow_module", []))
    allow_modules(allowed)
    import_allowed(allowed)
    target = getattr(args, "target", None) or args.file
    if is_yaml(target):
        workflow = load_workflow(target, overrides=getattr(args, "overrides", []),
                                 profile=getattr(args, "profile", None), check_stores=True,
                                 max_errors=getattr(args, "max_errors", 20))
        return workflow.flow, workflow
    return load_flow(target), None


def cmd_validate(args: argparse.Namespace) -> int:
    from agentflow.errors import GraphBuildError, SpecError

    try:
        flow = load_target(args)
    except (GraphBuildError, SpecError) as exc:
        print(f"agentflow: {exc}", file=sys.stderr)
        return EXIT_BUILD
    compiled = flow.compile()
    nodes = sum(1 for u in compiled.units.values() if u.kind == "node")
    print(f"{args.file}: ok ({flow.name}: {nodes} nodes, inputs: {', '.join(compiled.inputs)})")
    return EXIT_OK


def cmd_graph(args: argparse.Namespace) -> int:
    from agentflow.errors import GraphBuildError, SpecError
    from agentflow.spec.diagram import to_mermaid, to_svg

    try:
        flow = load_target(args)
    except (GraphBuildError, SpecError) as exc:
        print(f"agentflow: {exc}", file=sys.stderr)
        return EXIT_BUILD
    structure = flow.compile().structure
    text = to_svg(structure) if args.format == "svg" else to_mermaid(structure)
    _write(text, args.out)
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from agentflow.nodes import load_builtins
    from agentflow.spec.load import import_allowed
    from agentflow.spec.model import json_schema

    load_builtins()
    import_allowed(args.allow_module)
    if args.format == "markdown":
        from agentflow.spec.reference import render_markdown

        _write(render_markdown(json_schema()), args.out)
    else:
        _write(json.dumps(json_schema(), indent=2) + "\n", args.out)
    return EXIT_OK


def _write(text: str, out: str | None) -> None:
    if out:
        Path(out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


def parse_inputs(pairs: Sequence[str], raw_json: str | None) -> dict[str, Any]:
    """``--input-json`` first, then each ``--input key=value`` on top of it."""
    values: dict[str, Any] = {}
    if raw_json:
        text = raw_json
        if raw_json.startswith("@"):
            path = Path(raw_json[1:])
            if not path.is_file():
                raise UsageError(f"--input-json: no such file {str(path)!r}")
            text = path.read_text(encoding="utf-8")
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--input-json is not valid JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise UsageError("--input-json must be a JSON object, e.g. '{\"question\": \"...\"}'")
        values.update(loaded)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--input expects KEY=VALUE, got {pair!r}")
        try:
            values[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            values[key.strip()] = value
    return _valid_text(values)


def _valid_text(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with lone surrogates (``"\\udcff"`` in JSON, undecodable bytes in argv) replaced
    by U+FFFD, with a warning: such a string can be neither stored nor printed as UTF-8."""
    from agentflow.redaction import has_surrogates, scrub_surrogates

    found = 0

    def clean(value: Any) -> Any:
        nonlocal found
        if isinstance(value, str):
            if has_surrogates(value):
                found += 1
                return scrub_surrogates(value)
            return value
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, dict):
            return {clean(k): clean(v) for k, v in value.items()}
        return value

    cleaned = clean(values)
    if found:
        print(f"agentflow: warning: {found} input value(s) held invalid characters (lone "
              "surrogates); each was replaced by U+FFFD", file=sys.stderr)
    return cleaned


def load_flow(target: str) -> Any:
    """The Flow of ``module:attr`` (:func:`agentflow.spec.targets.load_flow`); a bad target is a
    usage error."""
    from agentflow.errors import InputError
    from agentflow.spec.targets import load_flow as load

    try:
        return load(target)
    except InputError as exc:
        raise UsageError(str(exc)) from None


def cmd_run(args: argparse.Namespace) -> int:
    from agentflow.errors import AgentflowError, InputError
    from agentflow.graph.result import to_jsonable
    from agentflow.spec.services import default_services
    from agentflow.tracing import hooks_or_warn

    inputs = parse_inputs(args.input, args.input_json)
    tags = {"origin": "run"}
    for pair in args.tag:
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            print(f"agentflow: bad --tag {pair!r}: give KEY=VALUE, e.g. --tag experiment=v2",
                  file=sys.stderr)
            return EXIT_USAGE
        tags[key.strip()] = value.strip()
    try:
        flow, workflow = load_workflow_or_flow(args)
        flow.compile()
        services = workflow.services(profile=args.profile) if workflow else default_services(
            profile=args.profile, base=flow.services)
    except AgentflowError as exc:  # a workflow that does not build, a collection that cannot be ingested
        return report_setup_error(exc, "cannot prepare the run")
    progress = None if args.quiet else _Progress()
    hooks: list[Any] = [progress] if progress else []
    hooks += hooks_or_warn()
    try:
        result = flow.run(
            None if args.resume else inputs,
            services=services,
            hooks=hooks,
            thread_id=args.thread_id,
            checkpointer=args.checkpoint,
            resume=args.resume,
            tags=tags,
        )
    except InputError as exc:
        print(f"agentflow: bad input: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except AgentflowError as exc:
        _flush_traces()
        print(f"agentflow: run failed: {exc}", file=sys.stderr)
        if args.output == "json":
            partial = getattr(exc, "result", None)
            state = partial.state if partial is not None else {}
            print(json.dumps({"status": "error", "error": str(exc), "state": to_jsonable(state)}))
        return EXIT_FAILED
    _flush_traces()
    state = result.state
    if workflow is not None:
        state = workflow.outputs_of(state)
    if args.output == "json":
        print(json.dumps(to_jsonable(state), ensure_ascii=False))
    else:
        _print_state(state)
    return EXIT_OK


def _flush_traces() -> None:
    from agentflow.tracing import flush_default_hooks

    flush_default_hooks()


class _Progress:
    """Prints one line per finished node (and loop pass) on stderr."""

    def on_event(self, *, event: Any, **kwargs: Any) -> None:
        kind = event.kind
        if kind == "node_finished":
            mark = "ok" if event.status == "ok" else "FAILED"
            where = f" pass {event.pass_index}" if event.pass_index else ""
            where += f" item {event.item_index}" if event.item_index is not None else ""
            print(f"  {mark:<6} {event.name}{where}", file=sys.stderr, flush=True)
        elif kind == "loop_finished":
            from agentflow.tracing.payloads import LoopPayload

            loop = LoopPayload.from_data(event.data)
            print(f"  loop   {event.name}: {loop.stop_reason} after {loop.passes} pass(es)",
                  file=sys.stderr, flush=True)


def _print_state(state: dict[str, Any]) -> None:
    """The final state for a person: the answer first, citations and checks one line each;
    what is empty on this route (no citations on a declined question, say) is left out."""
    from agentflow.graph.result import to_jsonable

    plain = to_jsonable(state)
    if "answer" in plain:
        print(plain["answer"], end="\n\n")
    for key, value in plain.items():
        if key == "answer" or value is None or value in ("", [], {}):
            continue
        if key == "citations" and isinstance(value, list):
            print("citations:")
            for c in value:
                print(f"  [DOC {c.get('doc')}] {c.get('source')}: {_short(c.get('quote', ''), 110)}")
        elif key == "checks" and isinstance(value, dict):
            print("checks:")
            for name, r in value.items():
                mark = "passed" if r.get("passed") else "FAILED"
                score = r.get("score")
                shown = f"{score:.2f}" if isinstance(score, (int, float)) else "-"
                print(f"  {name:<18} {mark} ({shown}) {_short(r.get('reason') or '', 90)}")
        else:
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            print(f"{key}: {_short(text, 300)}")


def _short(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


if __name__ == "__main__":
    entry()
