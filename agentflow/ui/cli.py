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
    p.add_argument("--db", metavar="PATH",
                   help="trace database (default: $AGENTFLOW_TRACES_DB or .agentflow/traces.db)")
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
    from agentflow.serve.guards import allowed_hosts, unchecked_warning

    try:
        allowed_hosts(args.host, args.allow_host)
    except ValueError as exc:
        print(f"agentflow: error: --allow-host: {exc}", file=sys.stderr)
        return EXIT_USAGE
    db = args.db or default_db_path()
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"agentflow traces from {db}: http://{host}:{args.port}  (Ctrl+C to stop)",
          file=sys.stderr, flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print("warning: the viewer has no authentication and traces hold prompts and answers; "
              f"anyone who can reach {args.host}:{args.port} can read them", file=sys.stderr)
    warning = unchecked_warning(args.host, args.allow_host, "--allow-host")
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    serve(db, host=args.host, port=args.port, allow_hosts=args.allow_host)
    return EXIT_OK
