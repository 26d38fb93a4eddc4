"""``agentflow models``: which profile is in force, what each alias resolves to, and the model catalogue.

``agentflow models`` prints, per alias and per model behind it, the catalogue of
:mod:`agentflow.models.catalog` (parameters, price per million input and output tokens, context window and
maximum output, training cutoff, provider family; unknown where nothing says) beside what the traces measured
(calls, time to first token, tokens/s, p50 latency, cost per run). ``agentflow models bench ALIAS...``
measures time to first token and tokens/s live.

Imports stay inside the functions so ``agentflow --help`` loads neither pydantic models nor
LiteLLM. Nothing here calls a model or reads an API key's value.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any
from urllib.parse import urlsplit, urlunsplit

_EPILOG = """\
examples:
  agentflow models                      # the profile in force and its aliases
  agentflow models --profile openai     # what --profile openai would use
  agentflow models --all --json         # every profile, as JSON
  agentflow models --output json        # the catalogue as JSON (context_window, max_output_tokens,
                                        #   input_per_million, output_per_million, training_cutoff,
                                        #   parameters, family, measured)
  agentflow models bench large small    # time to first token and tokens/s, live (streamed)

The profile in force: --profile, else $AGENTFLOW_PROFILE, else the workflow's profile:, else
agentflow.yaml's profile:, else offline.
"""


def add_profile_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--profile NAME`` to a command (``run`` uses the same option)."""
    parser.add_argument(
        "--profile",
        default=None,
        metavar="NAME",
        help="model profile: offline (default), local, openai, anthropic, ollama, self-hosted, or one "
        "defined in agentflow.yaml (overrides $AGENTFLOW_PROFILE and the workflow's)",
    )


def add_parser(subparsers: Any) -> None:
    """Register the ``models`` subcommand on an argparse subparsers object."""
    parser = subparsers.add_parser(
        "models",
        help="show the model profile in force and what each alias resolves to",
        description="Show the model profile in force and each alias's models (fallbacks last).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_profile_argument(parser)
    parser.add_argument("--config", default="agentflow.yaml", metavar="PATH",
                        help="project configuration (default: agentflow.yaml; missing = defaults)")
    parser.add_argument("--all", action="store_true", help="every known profile, not only one")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--output", choices=("text", "json"), default="text",
                        help="json: the catalogue (and the profile) as JSON")
    parser.add_argument("--traces", default=".agentflow/traces.db", metavar="PATH",
                        help="trace store the measured columns come from (default .agentflow/traces.db)")
    parser.add_argument("--runs", type=int, default=3, metavar="N", help="bench: streamed requests per alias")
    parser.add_argument("words", nargs="*", metavar="bench ALIAS", help="bench ALIAS...: measure live")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print the profile(s) and the catalogue, or bench aliases; exit 2 on a configuration error."""
    from agentflow.errors import ConfigError, ModelError
    from agentflow.models.profiles import load_models_config, resolve_profile

    if args.words and args.words[0] != "bench":
        print(f"agentflow models: unknown command {args.words[0]!r}; valid: bench ALIAS...", file=sys.stderr)
        return 2
    try:
        config = load_models_config(args.config)
        name, source = resolve_profile(cli=args.profile, config=config)
        if args.words:
            return _bench(args, name)
        names = config.profile_names() if args.all else [name]
        report = {"profile": name, "source": source, "cache": config.cache.model_dump(),
                  "profiles": {n: _describe(config, n) for n in names}}
        if args.output == "json" or not args.json:
            from agentflow.models.catalog import catalogue

            report["catalog"] = [r.as_dict() for r in catalogue(config, name, config_path=args.config,
                                                               traces=args.traces)]
    except (ConfigError, ModelError) as exc:
        print(f"agentflow: {exc}", file=sys.stderr)
        return 2
    if args.output == "json":
        print(json.dumps(report, indent=2))
        return 0
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"profile: {name} (from {source}); cache: {config.cache.mode} ({config.cache.path})")
    for profile, aliases in report["profiles"].items():
        if args.all:
            print(f"\n[{profile}]")
        for alias, entries in aliases.items():
            if isinstance(entries, str):
                print(f"  {alias}: {entries}")
                continue
            chain = " -> ".join(_line(e) for e in entries)
            print(f"  {alias:<10} {chain}")
    _print_catalog(report["catalog"])
    return 0


_COLUMNS = (("alias", "alias"), ("model", "model"), ("family", "family"), ("parameters", "params"),
            ("context_window", "context"), ("max_output_tokens", "max out"), ("input_per_million", "$/M in"),
            ("output_per_million", "$/M out"), ("training_cutoff", "cutoff"))
_MEASURED = (("calls", "calls"), ("ttft_s", "TTFT s"), ("tokens_per_s", "tok/s"), ("p50_latency_s", "p50 s"),
             ("cost_per_run", "$/run"))


def _print_catalog(rows: list[dict[str, Any]]) -> None:
    """The catalogue as a table: facts, then what the traces measured (``unknown`` where nothing says)."""
    if not rows:
        return
    table = [[h for _, h in _COLUMNS + _MEASURED]]
    for row in rows:
        alias = row["alias"] if row["position"] == 0 else f"  ({row['alias']} fallback)"
        cells = [alias] + [_cell(k, row[k]) for k, _ in _COLUMNS[1:]]
        cells += [_cell(k, row["measured"].get(k), measured=bool(row["measured"])) for k, _ in _MEASURED]
        table.append(cells)
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    print("\ncatalogue (unknown: no source says; - : no traced calls):")
    for r in table:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _cell(key: str, value: Any, *, measured: bool = True) -> str:
    if value is None:
        return "unknown" if measured else "-"
    if key == "parameters" and isinstance(value, int):
        return f"{value / 1e9:.1f}B" if value >= 1e9 else f"{value / 1e6:.0f}M"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _bench(args: argparse.Namespace, profile: str) -> int:
    import asyncio

    from agentflow.models import build_router
    from agentflow.models.catalog import bench_all

    aliases = args.words[1:]
    if not aliases:
        print("agentflow models bench: name at least one alias", file=sys.stderr)
        return 2
    router = build_router(args.config, profile=profile)
    try:
        for alias in aliases:
            router.check_alias(alias, where="agentflow models bench")
        results = asyncio.run(bench_all(router, aliases, runs=max(1, args.runs)))
    finally:
        router.close()
    if args.output == "json":
        print(json.dumps([r.as_dict() for r in results], indent=2))
        return 0
    for r in results:
        print(f"{r.alias:<10} {r.model}: time to first token {r.ttft_s:.3f} s, {r.tokens_per_s:.1f} tokens/s, "
              f"p50 latency {r.latency_s:.2f} s ({r.completion_tokens:.0f} tokens, {r.runs} runs)")
    return 0


def _describe(config: Any, name: str) -> dict[str, Any]:
    from agentflow.errors import ConfigError

    try:
        aliases = config.aliases_of(name)
    except ConfigError as exc:  # e.g. self-hosted without an api_base: say so, do not fail
        return {"error": str(exc)}
    return {
        alias: [
            {
                "model": e.model,
                "kind": e.provider_kind(),
                "api_base": _redact(e.api_base),
                "api_key_env": e.api_key_env,
                "price": e.price.model_dump() if e.price else None,
                "context_window": e.context_window,
                "serve": e.serve.model_dump(mode="json") if e.serve else None,
            }
            for e in entries
        ]
        for alias, entries in sorted(aliases.items())
    }


def _line(entry: dict[str, Any]) -> str:
    extra = [entry["kind"]]
    if entry["api_base"]:
        extra.append(entry["api_base"])
    if entry["price"]:
        extra.append("priced" if any(entry["price"][k] for k in _PRICES) else "price 0")
    if entry["serve"]:  # agentflow starts the model server itself when none answers at api_base
        model = entry["serve"]["model"] or entry["model"].partition("/")[2] or entry["model"]
        extra.append(f"else started: agentflow model-server serve --model {model}")
    return f"{entry['model']} ({', '.join(extra)})"


_PRICES = ("input_per_million", "output_per_million", "per_gpu_second")


def _redact(url: str | None) -> str | None:
    """An api_base without any user:password part."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
