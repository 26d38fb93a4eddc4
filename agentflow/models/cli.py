"""``agentflow models``: which profile is in force, and what each alias resolves to.

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
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print the profile(s); exit 2 on a configuration error."""
    from agentflow.errors import ConfigError
    from agentflow.models.profiles import load_models_config, resolve_profile

    try:
        config = load_models_config(args.config)
        name, source = resolve_profile(cli=args.profile, config=config)
        names = config.profile_names() if args.all else [name]
        report = {"profile": name, "source": source, "cache": config.cache.model_dump(),
                  "profiles": {n: _describe(config, n) for n in names}}
    except ConfigError as exc:
        print(f"agentflow: {exc}", file=sys.stderr)
        return 2
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
    if entry["serve"]:  # agentflow starts the node itself when none answers at api_base
        model = entry["serve"]["model"] or entry["model"].partition("/")[2] or entry["model"]
        extra.append(f"else started: agentflow node serve --model {model}")
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
