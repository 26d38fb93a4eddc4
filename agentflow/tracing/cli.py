"""``agentflow traces list|show|export``: the trace store from the terminal.

Exit codes follow the ``agentflow`` command: 0 success, 1 a store that cannot be read or an output
that cannot be written, 2 bad usage, an unknown run or no store yet. The store is only read (see
:mod:`agentflow.tracing.query`), so these work on a read-only ``.agentflow``. Only the standard
library (and the payload types, which need nothing else) is imported until a subcommand runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, TextIO

from agentflow.tracing.payloads import format_cost, payload_type

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_parser(subparsers: Any) -> None:
    """Register ``traces`` and its subcommands on the ``agentflow`` command's subparsers."""
    p = subparsers.add_parser("traces", help="list, show and export recorded runs",
                              description="Inspect the runs recorded in the trace store.")
    p.set_defaults(handler=run, traces_command=None)
    sub = p.add_subparsers(title="subcommands", metavar="SUBCOMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", metavar="PATH",
                        help="trace database (default: $AGENTFLOW_TRACES_DB or .agentflow/traces.db)")

    ls = sub.add_parser("list", parents=[common], help="the recorded runs, newest first")
    ls.add_argument("-w", "--workflow", help="only runs of this workflow")
    ls.add_argument("-s", "--status", choices=("running", "ok", "error", "incomplete"))
    ls.add_argument("--sort", choices=("time", "latency", "cost"), default="time")
    ls.add_argument("--asc", action="store_true", help="ascending (oldest, fastest, cheapest first)")
    ls.add_argument("-t", "--tag", metavar="KEY=VALUE",
                    help="only runs with this tag, e.g. origin=eval or variant=b")
    ls.add_argument("-n", "--limit", type=int, default=20)
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    ls.set_defaults(traces_command="list")

    show = sub.add_parser("show", parents=[common], help="one run as a tree of spans")
    show.add_argument("run_id", nargs="?", default="last", help="run id, unique prefix, or 'last'")
    show.add_argument("--json", action="store_true", help="the run and its spans, with payloads")
    show.set_defaults(traces_command="show")

    fb = sub.add_parser("feedback", parents=[common], help="rate a run: thumbs up or down")
    fb.add_argument("run_id", help="run id, unique prefix, or 'last'")
    fb.add_argument("score", choices=("up", "down"))
    fb.add_argument("-m", "--comment", help="what was right or wrong")
    fb.add_argument("--user", help="who rates (an id of yours; optional)")
    fb.set_defaults(traces_command="feedback")

    ex = sub.add_parser("export", parents=[common], help="runs as JSON, or to an OTLP collector")
    ex.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="runs to export (default: last)")
    ex.add_argument("--all", action="store_true", help="every run (with --workflow: its runs)")
    ex.add_argument("-w", "--workflow", help="with --all: only runs of this workflow")
    ex.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    ex.add_argument("--otlp", metavar="URL",
                    help="send to an OTLP/HTTP collector, e.g. http://localhost:4318/v1/traces")
    ex.set_defaults(traces_command="export")


def run(args: argparse.Namespace) -> int:
    """Run a ``traces`` subcommand; returns the exit code."""
    import sqlite3

    from agentflow.errors import ConfigError
    from agentflow.tracing.defaults import default_db_path
    from agentflow.tracing.query import TraceNotFoundError, TraceReader

    if args.traces_command is None:
        print("agentflow traces: choose a subcommand: list, show, feedback or export", file=sys.stderr)
        return EXIT_USAGE
    path = args.db or default_db_path()
    try:
        if args.traces_command == "feedback":
            return _feedback(path, args)
        with TraceReader(path) as reader:
            return {"list": _list, "show": _show, "export": _export}[args.traces_command](reader, args)
    except TraceNotFoundError as exc:
        print(f"agentflow: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:  # not a trace database, or not readable
        print(f"agentflow: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except sqlite3.Error as exc:  # a file damaged past its header, say
        print(f"agentflow: error: cannot read the trace store {str(path)!r}: {exc}",
              file=sys.stderr)
        return EXIT_FAILED


# list ------------------------------------------------------------------------------------------
def _list(reader: Any, args: argparse.Namespace) -> int:
    runs = reader.runs(workflow=args.workflow, status=args.status, sort=args.sort,
                       descending=not args.asc, limit=args.limit, tag=args.tag)
    if args.json:
        for r in runs:
            print(json.dumps(r.to_dict(), ensure_ascii=False))
        return EXIT_OK
    if not runs:
        print("no runs match", file=sys.stderr)
        return EXIT_OK
    print(f"{'RUN':<10} {'STARTED':<19} {'WORKFLOW':<20} {'STATUS':<10} {'LATENCY':>9} "
          f"{'NODES':>5} {'TOKENS':>7} {'COST':>9} {'ORIGIN':<7} {'FEEDBACK'}")
    for r in runs:
        rated = f"+{r.feedback_up}/-{r.feedback_down}" if r.feedback_up or r.feedback_down else ""
        print(f"{r.run_id[:8]:<10} {_when(r.started):<19} {r.workflow[:20]:<20} {r.status:<10} "
              f"{_ms(r.duration_s):>9} {r.nodes:>5} {r.tokens:>7} {_cost(r.cost):>9} "
              f"{r.tags.get('origin', ''):<7} {rated}".rstrip())
    return EXIT_OK


# feedback --------------------------------------------------------------------------------------
def _feedback(path: Any, args: argparse.Namespace) -> int:
    from agentflow.errors import InputError
    from agentflow.tracing.feedback import record_feedback
    from agentflow.tracing.query import TraceNotFoundError

    try:
        fb = record_feedback(path, args.run_id, score=args.score, comment=args.comment,
                             user_id=args.user, source="cli")
    except TraceNotFoundError:
        raise
    except InputError as exc:
        print(f"agentflow: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"thumbs {fb.thumbs} recorded for run {fb.run_id[:8]}")
    return EXIT_OK


# show ------------------------------------------------------------------------------------------
def _show(reader: Any, args: argparse.Namespace) -> int:
    detail = reader.run(args.run_id, with_data=args.json)
    if args.json:
        print(json.dumps(detail.to_dict(), ensure_ascii=False, indent=2))
        return EXIT_OK
    s = detail.summary
    print(f"run {s.run_id}  {s.workflow}  {s.status}  {_ms(s.duration_s)}  started {_when(s.started)}")
    print(f"  {s.spans} spans, {s.nodes} nodes, {s.model_calls} model calls, {s.tokens} tokens, "
          f"cost {_cost(s.cost)}")
    if s.error:
        print(f"  error: {s.error}")
    print_tree(detail.spans, s.run_id, sys.stdout)
    return EXIT_OK


def print_tree(spans: list[dict[str, Any]], root: str, out: TextIO) -> None:
    """Draw spans as a tree under the run, children in start order."""
    ids = {sp["span_id"] for sp in spans}
    children: dict[str, list[dict[str, Any]]] = {}
    for sp in spans:
        parent = sp["parent_id"] if sp["parent_id"] in ids else root
        children.setdefault(parent, []).append(sp)

    def walk(parent: str, prefix: str) -> None:
        kids = children.get(parent, [])
        for i, sp in enumerate(kids):
            last = i == len(kids) - 1
            print(f"{prefix}{'└─ ' if last else '├─ '}{describe_span(sp)}", file=out)
            walk(sp["span_id"], prefix + ("   " if last else "│  "))

    walk(root, "")


def describe_span(sp: dict[str, Any]) -> str:
    """One line for a span: what it is (its payload type says, from the stored summary), how it
    ended, how long it took."""
    duration = None if sp["end"] is None else sp["end"] - sp["start"]
    mark = {"ok": "ok", "error": "FAILED", "running": "running", "incomplete": "INCOMPLETE"}.get(
        sp["status"], sp["status"])
    text = payload_type(sp["kind"]).describe(sp)
    text = f"{text}  [{mark}{'' if duration is None else ' ' + _ms(duration)}]"
    if sp.get("error") and sp["status"] != "ok":
        text += f"  {sp['error'][:160]}"
    return text


# export ----------------------------------------------------------------------------------------
def _export(reader: Any, args: argparse.Namespace) -> int:
    if args.all:
        ids = [r.run_id for r in reader.runs(workflow=args.workflow, limit=1_000_000)]
    else:
        ids = [reader.resolve(ref) for ref in (args.run_ids or ["last"])]
    details = [reader.run(run_id, with_data=True) for run_id in ids]
    from agentflow.redaction import redact, secret_env_values

    secrets = secret_env_values()  # redacted again: an older version may have stored secrets
    if args.otlp:
        from agentflow.tracing.otel import export_spans, otlp_exporter
        from agentflow.tracing.query import run_records

        exporter = otlp_exporter(args.otlp)
        sent = sum(export_spans(run_records(d), exporter) for d in details)
        exporter.shutdown()
        print(f"exported {len(details)} run(s), {sent} spans to {args.otlp}", file=sys.stderr)
        return EXIT_OK
    try:
        out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    except OSError as exc:  # a read-only folder: say so, rather than a traceback
        print(f"agentflow: error: cannot write {args.output!r}: {exc.strerror or exc}",
              file=sys.stderr)
        return EXIT_FAILED
    try:
        for d in details:
            record = {**d.to_dict(),
                      "feedback": [f.to_dict() for f in reader.feedback(d.summary.run_id)]}
            out.write(json.dumps(redact(record, secrets), ensure_ascii=False) + "\n")
    finally:
        if args.output:
            out.close()
    if args.output:
        print(f"exported {len(details)} run(s) to {args.output} (one JSON object per line)",
              file=sys.stderr)
    return EXIT_OK


# formatting ------------------------------------------------------------------------------------
def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


_cost = format_cost
