"""``agentflow serve`` (workflows over HTTP) and ``agentflow ab report`` (an A/B test's results).

FastAPI and uvicorn are imported only when serving; ``agentflow --help`` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from agentflow.argtypes import positive_int
from agentflow.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, report_setup_error


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) < 65536:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {text!r}")
    return int(text)


def add_parser(sub: Any) -> None:
    """Register ``serve`` and ``ab`` on the ``agentflow`` command's subparsers."""
    from agentflow.api.settings import DEFAULT_MAX_BYTES, DEFAULT_PORT, KEY_ENV
    from agentflow.models.cli import add_profile_argument

    p = sub.add_parser(
        "serve", help="serve workflows over HTTP (runs, threads, an OpenAI-compatible chat endpoint)",
        description="Serve YAML workflows as an HTTP API: POST /workflows/NAME/runs (and /runs/stream), "
                    "threads, GET /runs/ID, feedback, and POST /v1/chat/completions with model=NAME. "
                    "A/B tests: NAME.ab.yaml beside a workflow, or --ab FILE.")
    p.add_argument("files", nargs="+", metavar="FILE.yaml", help="the workflows to serve")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=_port, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--workers", type=positive_int, default=1, metavar="K",
                   help="worker processes (default 1); each builds its own services; share threads through "
                        "--checkpoint postgresql://...")
    p.add_argument("--checkpoint", metavar="PATH|URL",
                   help="where threads are checkpointed: a SQLite file (default .agentflow/checkpoints.db) or "
                        "postgresql://user:password@host:5432/db")
    p.add_argument("--no-records", action="store_true",
                   help="with --checkpoint postgresql://...: do not also record runs and feedback there (the "
                        "A/B report's data, for machines that do not share a trace store)")
    p.add_argument("--api-key", metavar="KEY",
                   help="require 'Authorization: Bearer KEY' on every route (prefer --api-key-env: a key on the "
                        "command line shows in the process list)")
    p.add_argument("--api-key-env", metavar="VAR",
                   help=f"read the key from environment variable VAR (default: {KEY_ENV}, when it is set)")
    p.add_argument("--ab", action="append", default=[], metavar="FILE",
                   help="an A/B test file (repeatable); NAME.ab.yaml beside a workflow is found without it")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="also answer requests whose Host header is NAME (repeatable; '*.domain' or '*')")
    p.add_argument("--max-request-bytes", type=positive_int, default=DEFAULT_MAX_BYTES, metavar="N",
                   help=f"largest request body; larger ones get 413 (default {DEFAULT_MAX_BYTES})")
    p.add_argument("--set", action="append", default=[], metavar="DOTTED.PATH=VALUE", dest="overrides",
                   help="override a field of every served workflow (as agentflow run --set)")
    p.add_argument("--allow-module", action="append", default=[], metavar="MODULE",
                   help="let the workflows use node types and python functions from MODULE")
    p.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error"))
    add_profile_argument(p)
    p.set_defaults(handler=cmd_serve)

    ab = sub.add_parser("ab", help="A/B tests of served workflows: the report",
                        description="A/B tests of served workflows (see agentflow serve --help).")
    actions = ab.add_subparsers(title="actions", metavar="ACTION")
    r = actions.add_parser("report", help="per variant: runs, thumbs-up rate, significance, latency, cost",
                           description="Compare the variants of an A/B test from the trace store: thumbs-up "
                                       "rate with 95% intervals and a two-proportion z-test against the "
                                       "control, latency p50/p95, tokens and cost per run.")
    r.add_argument("experiment", nargs="?", help="the experiment's name (default: the latest one recorded)")
    r.add_argument("--db", metavar="PATH|URL", action="append", default=[],
                   help="trace database (default: $AGENTFLOW_TRACES_DB or .agentflow/traces.db); repeat it "
                        "to report over the stores of several machines together; or the postgresql:// URL "
                        "the servers record runs in (agentflow serve --checkpoint postgresql://...)")
    r.add_argument("--control", metavar="VARIANT", help="the variant the others are compared with "
                                                          "(default: 'control', else the first by name)")
    r.add_argument("--format", choices=("text", "json"), default="text")
    r.set_defaults(handler=cmd_ab_report)
    ab.set_defaults(handler=lambda args: (ab.print_help(), EXIT_USAGE)[1])


def settings_from(args: argparse.Namespace) -> Any:
    from agentflow.api.settings import KEY_ENV, ServeSettings

    key_env = args.api_key_env
    if args.api_key is not None:
        if not args.api_key.strip():
            raise ValueError("--api-key is empty")
        os.environ[KEY_ENV] = args.api_key  # the workers inherit it; the settings only name the variable
        key_env = KEY_ENV
    elif key_env is None and os.environ.get(KEY_ENV):
        key_env = KEY_ENV
    elif key_env is not None and not os.environ.get(key_env):
        raise ValueError(f"--api-key-env {key_env}: that environment variable is not set")
    return ServeSettings(
        files=tuple(str(Path(f).resolve()) for f in args.files), root=str(Path.cwd()), host=args.host,
        port=args.port, workers=args.workers, checkpoint=args.checkpoint, profile=args.profile,
        overrides=tuple(args.overrides), allow_modules=tuple(args.allow_module),
        experiments=tuple(str(Path(f).resolve()) for f in args.ab), allow_hosts=tuple(args.allow_host),
        max_request_bytes=args.max_request_bytes, api_key_env=key_env, records=not args.no_records)


def check(settings: Any) -> list[str]:
    """What can be checked before any worker starts: the workflows build, the experiment files are valid,
    several workers have no embedded store to share; returns the served names. Raises the errors."""
    from agentflow.api.variants import find_experiments
    from agentflow.api.workflows import check_single_process_stores
    from agentflow.nodes.python import allow_modules
    from agentflow.spec.load import import_allowed, load_workflow

    allow_modules(settings.allow_modules)
    import_allowed(settings.allow_modules)
    loaded: dict[str, Any] = {}
    for file in settings.files:
        workflow = load_workflow(file, overrides=list(settings.overrides), profile=settings.profile,
                                 check_stores=True)
        loaded[workflow.spec.name] = workflow
    find_experiments(settings, loaded)

    class _Loaded:  # what check_single_process_stores reads of a served workflow
        def __init__(self, workflow: Any) -> None:
            self.workflow = workflow

    check_single_process_stores({n: _Loaded(w) for n, w in loaded.items()}, settings.workers)
    return list(loaded)


def cmd_serve(args: argparse.Namespace) -> int:
    from agentflow.errors import AgentflowError

    for file in args.files:
        if not Path(file).is_file():
            print(f"agentflow: error: no such workflow file {file!r}", file=sys.stderr)
            return EXIT_USAGE
    try:
        settings = settings_from(args)
        from agentflow.model_server.guards import allowed_hosts, unchecked_warning

        allowed_hosts(settings.host, settings.allow_hosts)
    except ValueError as exc:
        print(f"agentflow: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        print(f"agentflow: error: serving needs the serve extra ({exc.name} is missing): "
              "pip install 'agentflow[serve]'", file=sys.stderr)
        return EXIT_USAGE
    try:
        names = check(settings)
        if settings.postgres:  # the tables once, here, rather than by every worker at once
            from agentflow.api.threads import open_threads

            async def setup() -> None:
                async with open_threads(settings.checkpoint_url, setup=True) as threads:
                    if settings.records:
                        from agentflow.api.records import Records

                        await Records(threads.pool).setup()

            asyncio.run(setup())
    except AgentflowError as exc:
        return report_setup_error(exc, "cannot serve")
    from dataclasses import replace

    from agentflow.api.server import serve
    from agentflow.api.settings import redacted_url

    settings = replace(settings, extra={"setup": not settings.postgres})
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    print(f"agentflow serving {', '.join(names)} on http://{host}:{settings.port} "
          f"({settings.workers} worker{'s' if settings.workers > 1 else ''}, threads in "
          f"{redacted_url(settings.checkpoint_url)}{', API key required' if settings.api_key() else ''}; "
          "Ctrl+C to stop)", file=sys.stderr, flush=True)
    if not settings.api_key() and settings.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: no API key: anyone who can reach {settings.host}:{settings.port} can run the "
              "workflows and read their traces (set --api-key-env)", file=sys.stderr)
    warning = unchecked_warning(settings.host, settings.allow_hosts, "--allow-host")
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    if settings.workers > 1 and not settings.postgres:
        print("warning: the workers share threads through one SQLite file, which does not keep two workers "
              "from running one thread at once; for several workers use --checkpoint postgresql://...",
              file=sys.stderr)
    serve(settings, log_level=args.log_level)
    return EXIT_OK


def cmd_ab_report(args: argparse.Namespace) -> int:
    from agentflow.api.abreport import build_report, render
    from agentflow.tracing.defaults import default_db_path
    from agentflow.tracing.query import TraceNotFoundError, TraceReader

    sources = list(args.db) or [str(default_db_path())]
    where = ", ".join(_redacted(p) for p in sources)
    runs: list[Any] = []
    experiment = args.experiment
    for source in sources:
        if source.startswith(("postgresql://", "postgres://")):
            from agentflow.api.records import RecordsError, read_experiment

            try:
                experiment, found = read_experiment(source, experiment)
            except RecordsError as exc:
                print(f"agentflow: {exc}", file=sys.stderr)
                return EXIT_FAILED
            runs += found
            continue
        db = Path(source)
        try:
            reader = TraceReader(db)
        except TraceNotFoundError as exc:
            print(f"agentflow: {exc}", file=sys.stderr)
            return EXIT_USAGE
        with reader:
            experiment = experiment or _latest_experiment(reader)
            if experiment is not None:
                runs += reader.runs(tag=f"experiment={experiment}", limit=10**9, sort="time", descending=False)
    if experiment is None:
        print(f"agentflow: no A/B test runs in {where}: serve a workflow with an experiment "
              "(NAME.ab.yaml beside it) first", file=sys.stderr)
        return EXIT_USAGE
    if not runs:
        print(f"agentflow: no runs of experiment {experiment!r} in {where}", file=sys.stderr)
        return EXIT_USAGE
    runs = list({r.run_id: r for r in runs}.values())  # a store copied twice counts once
    variants = sorted({r.tags.get("variant", "?") for r in runs})
    control = args.control or _first_variant(runs)
    if control not in variants:
        print(f"agentflow: --control {control!r} is no variant of {experiment!r}; variants: "
              f"{', '.join(variants)}", file=sys.stderr)
        return EXIT_USAGE
    report = build_report(experiment, runs, order=[control, *[v for v in variants if v != control]])
    if args.format == "json":
        print(json.dumps(report.to_dict(), indent=2))
    else:
        sys.stdout.write(render(report))
    return EXIT_OK


def _redacted(source: str) -> str:
    from agentflow.api.settings import redacted_url

    return redacted_url(source)


def _latest_experiment(reader: Any) -> str | None:
    latest = reader.runs(tag="experiment", limit=1)
    return latest[0].tags.get("experiment") if latest else None


def _first_variant(runs: list[Any]) -> str:
    """The control: the variant named ``control`` when there is one, else the first in the runs' variants
    sorted by name."""
    variants = sorted({r.tags.get("variant", "?") for r in runs})
    return "control" if "control" in variants else variants[0]
