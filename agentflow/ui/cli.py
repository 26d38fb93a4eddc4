"""``agentflow ui``: serve the trace viewer on 127.0.0.1 (the FastAPI app needs the ``ui`` extra)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

EXIT_OK, EXIT_USAGE = 0, 2


def add_parser(subparsers: Any) -> None:
    """Register ``ui`` on the ``agentflow`` command's subparsers."""
    p = subparsers.add_parser(
        "ui", help="open the trace viewer in the browser",
        description="Serve the trace viewer: runs, their graphs, timelines, prompts and costs.",
    )
    p.add_argument("--port", type=int, default=8737, help="port (default 8737)")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="also answer requests whose Host header is NAME (repeatable; '*.domain' or '*' too); "
                        "loopback names always work, and with --host 0.0.0.0 and no --allow-host any Host "
                        "does (with a warning)")
    p.add_argument("--db", metavar="PATH", action="append",
                   help="trace database (default: $AGENTFLOW_TRACES_DB or .agentflow/traces.db); "
                        "repeat to offer several in the page's picker, which also lists the "
                        ".agentflow/traces.db files under this folder")
    p.add_argument("--evals", metavar="DIR", action="append", default=[],
                   help="an `agentflow eval` folder, or a folder of them, to list under "
                        "Evaluations (repeatable; those in .agentflow/eval/runs/ beside each "
                        "database are listed anyway)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; returns the exit code."""
    try:
        from agentflow.ui.server import serve
    except ImportError as exc:
        print(f"agentflow: error: the trace viewer needs the ui extra ({exc.name} is missing): "
              "pip install 'agentflow[ui]'", file=sys.stderr)
        return EXIT_USAGE
    from agentflow.tracing.defaults import default_db_path

    if not 0 < args.port < 65536:
        print(f"agentflow: error: --port must be 1-65535, got {args.port}", file=sys.stderr)
        return EXIT_USAGE
    from agentflow.model_server.guards import allowed_hosts, unchecked_warning

    try:
        allowed_hosts(args.host, args.allow_host)
    except ValueError as exc:
        print(f"agentflow: error: --allow-host: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from pathlib import Path

    from agentflow.ui.stores import find_databases

    dbs = [Path(p) for p in args.db] if args.db else [default_db_path()]
    host = f"[{args.host}]" if ":" in args.host else args.host
    state = "" if dbs[0].is_file() else " (no runs yet)"
    print(f"agentflow traces from {dbs[0].resolve()}{state}: http://{host}:{args.port}  "
          "(Ctrl+C to stop)", file=sys.stderr, flush=True)
    others = {str(p.resolve()) for p in [*dbs[1:], *find_databases(Path.cwd())]} - {
        str(dbs[0].resolve())}
    if others:
        print(f"  {len(others)} other trace database(s) in the page's picker: "
              + ", ".join(sorted(others)[:5]) + (" ..." if len(others) > 5 else ""),
              file=sys.stderr, flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print("warning: the viewer has no authentication and traces hold prompts and answers; "
              f"anyone who can reach {args.host}:{args.port} can read them", file=sys.stderr)
    warning = unchecked_warning(args.host, args.allow_host, "--allow-host")
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    serve(dbs, host=args.host, port=args.port, allow_hosts=args.allow_host, discover=Path.cwd(),
          evals=args.evals)
    return EXIT_OK
