"""``agentflow eval``: run a workflow over a dataset and score it; ``agentflow eval compare``.

.. code-block:: console

    agentflow eval graphs/agentic_rag.yaml --dataset ../shared/data/clapnq_dev --format clapnq \\
        --limit 50 --out eval-out/clapnq
    agentflow eval compare eval-out/clapnq eval-out/clapnq-no-loop

Exit codes follow the ``agentflow`` command: 0 the evaluation finished (items that failed are in
the report), 1 every item failed, 2 bad usage or input (dataset, format, split, a folder that holds
another evaluation), 3 the workflow does not build, 130 interrupted (rerun to resume). Only the
standard library is imported until the command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BUILD, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

USAGE = ("agentflow eval WORKFLOW --dataset PATH --format NAME [options]\n"
         "       agentflow eval MODEL_ALIAS --dataset PATH --format mcq|halueval_mcq [--scoring S]\n"
         "       agentflow eval compare DIR_A DIR_B [--html FILE] [--judge ALIAS]\n"
         "       agentflow eval ratings [DIR ...] [--judge ALIAS] [--feedback]")


def add_parser(subparsers: Any) -> None:
    """Register ``eval`` on the ``agentflow`` command's subparsers."""
    from agentflow.models.cli import add_profile_argument

    p = subparsers.add_parser(
        "eval", help="evaluate a workflow on a dataset; compare two evaluations",
        usage=USAGE,
        description="Run a workflow over a dataset (resumable, concurrent, every item traced) and "
        "write DIR/results.jsonl, DIR/metrics.json and DIR/report.html. `agentflow eval compare "
        "DIR_A DIR_B` prints the deltas and writes an HTML compare page.",
        epilog="formats: clapnq, nq_open_oracle, hotpotqa, musique, scifact, clinc150, halueval, "
        "jsonl (your own data; see docs/how-to/evaluate.md); mcq and halueval_mcq score a model alias "
        "(the first argument) on multiple-choice items (docs/how-to/choose-models.md)")
    p.add_argument("target", metavar="WORKFLOW", help="a YAML workflow or module:attr; or `compare`")
    p.add_argument("dirs", nargs="*", metavar="DIR", help=argparse.SUPPRESS)
    p.add_argument("--dataset", metavar="PATH", help="the set's folder, or a .jsonl file")
    p.add_argument("--format", dest="fmt", metavar="NAME", help="the dataset's format")
    p.add_argument("--split", help="which split (default: the format's first)")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N items")
    p.add_argument("--concurrency", type=int, default=4, metavar="K",
                   help="items run at once (default 4)")
    p.add_argument("--out", metavar="DIR",
                   help="results folder (default .agentflow/eval/runs/WORKFLOW-FORMAT-SPLIT); "
                   "running again into it resumes")
    p.add_argument("--set", action="append", default=[], metavar="DOTTED.PATH=VALUE",
                   dest="overrides", help="override a field of the YAML workflow (repeatable)")
    p.add_argument("--allow-module", action="append", default=[], metavar="MODULE",
                   help="let the workflow use node types and python functions from MODULE")
    add_profile_argument(p)
    p.add_argument("--collection", default="knowledge",
                   help="the collection that receives the dataset's corpus (default knowledge)")
    p.add_argument("--route-node", metavar="NAME",
                   help="the classify node routing accuracy scores (default: the first)")
    p.add_argument("--answer-field", default="answer", help="state field of the answer")
    p.add_argument("--chunks-field", default="chunks",
                   help="state field of the retrieved context (default chunks)")
    p.add_argument("--recall-at", default="5,10", metavar="K,K",
                   help="the k of recall@k (default 5,10)")
    p.add_argument("--no-dataset-defaults", action="store_true",
                   help="do not apply the dataset's corpus and label descriptions")
    p.add_argument("--no-judge", action="store_true",
                   help="do not compute the checks the workflow did not run")
    p.add_argument("--retry-errors", action="store_true", help="run failed items again")
    p.add_argument("--fresh", action="store_true", help="discard the folder's earlier results")
    p.add_argument("--html", metavar="FILE", help="compare: where to write the page "
                   "(default DIR_B/compare.html)")
    p.add_argument("--judge", metavar="ALIAS", help="compare, ratings: an LLM judge (model alias) picks the "
                   "better answer of each shared item, asked in both orders")
    p.add_argument("--feedback", action="store_true", help="ratings: also games from thumbs up/down on runs "
                   "of served A/B variants (run tag variant) in --traces")
    p.add_argument("--traces", default=".agentflow/traces.db", metavar="PATH",
                   help="ratings --feedback: the trace store (default .agentflow/traces.db)")
    p.add_argument("--ui-url", default="http://127.0.0.1:8737",
                   help="trace viewer address the report links to (agentflow ui)")
    p.add_argument("--scoring", choices=("auto", "loglik", "letter"), default="auto",
                   help="mcq: each choice's log-likelihood (a model on agentflow's model server or vLLM), the "
                   "letter a chat model answers, or auto (loglik where the server can)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``eval`` or ``eval compare``; returns the exit code."""
    from agentflow.errors import InputError

    try:
        if args.target == "compare":
            return _compare(args)
        if args.target == "ratings":
            return _ratings(args)
        if args.dirs:
            return _usage(f"unexpected argument(s) {' '.join(args.dirs)}")
        return _evaluate(args)
    except InputError as exc:
        print(f"agentflow: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _usage(message: str) -> int:
    print(f"usage: {USAGE}\nagentflow eval: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _recall_ks(text: str) -> tuple[int, ...] | None:
    try:
        ks = tuple(sorted({int(k) for k in text.split(",") if k.strip()}))
    except ValueError:
        return None
    return ks if ks and all(k >= 1 for k in ks) else None


def _evaluate(args: argparse.Namespace) -> int:
    if not args.dataset or not args.fmt:
        from agentflow.eval.formats import FORMATS

        return _usage("--dataset and --format are required; formats: " + ", ".join(FORMATS))
    ks = _recall_ks(args.recall_at)
    if ks is None or args.concurrency < 1:
        return _usage("--recall-at takes positive integers (5,10) and --concurrency at least 1")
    import asyncio

    from agentflow.errors import ConfigError, GraphBuildError, RetrievalError, SpecError
    from agentflow.eval.evaluate import evaluate, write_outputs
    from agentflow.eval.formats import load_dataset
    from agentflow.eval.results import read_manifest
    from agentflow.eval.runner import RunOptions
    from agentflow.nodes.python import allow_modules
    from agentflow.spec.load import import_allowed

    dataset = load_dataset(args.dataset, args.fmt, split=args.split, limit=args.limit)
    folder = Path(args.out or _default_out(args.target, dataset.format, dataset.split))
    if dataset.format in ("mcq", "halueval_mcq"):
        return _evaluate_mcq(args, dataset, folder)
    options = RunOptions(concurrency=args.concurrency, judge=not args.no_judge, recall_ks=ks,
                         retry_errors=args.retry_errors, progress=not args.quiet)
    try:
        allow_modules(args.allow_module)
        import_allowed(args.allow_module)
        outcome = asyncio.run(evaluate(
            args.target, dataset, folder, overrides=args.overrides, profile=args.profile,
            options=options, collection=args.collection, route=args.route_node,
            answer=args.answer_field, chunks=args.chunks_field,
            use_defaults=not args.no_dataset_defaults, fresh=args.fresh, ui_url=args.ui_url))
    except (GraphBuildError, SpecError) as exc:
        print(f"agentflow: workflow does not build: {exc}", file=sys.stderr)
        return EXIT_BUILD
    except (ConfigError, RetrievalError) as exc:
        print(f"agentflow: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        manifest = read_manifest(folder) or {}
        if manifest:
            write_outputs(folder, dataset, manifest, ui_url=args.ui_url)
        print(f"agentflow: interrupted; finished items are in {folder / 'results.jsonl'}; run the "
              "same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    _print_summary(outcome.summary, folder)
    items = outcome.summary["items"]
    return EXIT_FAILED if items["finished"] and not items["ok"] else EXIT_OK


def _evaluate_mcq(args: argparse.Namespace, dataset: Any, folder: Path) -> int:
    """Score the model alias ``args.target`` on multiple-choice items; write results.jsonl and metrics.json."""
    import asyncio
    import json

    from agentflow.errors import ConfigError, ModelError
    from agentflow.eval.multiple_choice import score_mcq
    from agentflow.models import build_router

    router = build_router(profile=args.profile)
    try:
        router.check_alias(args.target, where="agentflow eval (a multiple-choice set scores a model alias)")
        report = asyncio.run(score_mcq(router, args.target, dataset.items, scoring=args.scoring,
                                       concurrency=args.concurrency))
    except (ConfigError, ModelError) as exc:
        print(f"agentflow: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        router.close()
    folder.mkdir(parents=True, exist_ok=True)
    metrics = {"format": dataset.format, "split": dataset.split, "alias": args.target, **report.metrics()}
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    with (folder / "results.jsonl").open("w", encoding="utf-8") as out:
        for row in report.rows():
            out.write(json.dumps(row) + "\n")
    low, high = report.interval
    print(f"{args.target} ({report.model}) on {dataset.format}/{dataset.split}, scored by {report.scoring}: "
          f"accuracy {report.accuracy:.3f} (95% interval {low:.3f}-{high:.3f}, n={report.items}; chance "
          f"{report.chance:.3f})" + ("" if report.accuracy_norm is None else
                                     f", length-normalised {report.accuracy_norm:.3f}"))
    print(f"metrics: {folder / 'metrics.json'}")
    return EXIT_OK


def _default_out(target: str, fmt: str, split: str) -> Path:
    stem = (Path(target).stem if target.endswith((".yaml", ".yml"))
            else target.replace(":", "-").replace(".", "-"))
    return Path(".agentflow") / "eval" / "runs" / f"{stem}-{fmt}-{split}"


def _print_summary(summary: dict[str, Any], folder: Path) -> None:
    from agentflow.eval.summary import COST_METRICS, label, quality_names

    metrics, counts = summary["metrics"], summary["counts"]
    items = summary["items"]
    print(f"{summary.get('workflow')} on {summary.get('format')}/{summary.get('split')}: "
          f"{items['finished']} of {items['planned']} items, {items['errors']} errors")
    names = quality_names(counts) + [n for n in COST_METRICS if metrics.get(n) is not None]
    width = max([len(label(n)) for n in names] + [6])
    for n in names:
        value = metrics.get(n)
        shown = "-" if value is None else f"{value:.4f}"
        scored = f"  (n={counts[n]})" if n in counts else ""
        print(f"  {label(n):<{width}}  {shown}{scored}")
    for note in summary.get("notes") or []:
        print(f"  note: {note}")
    print(f"report: {folder / 'report.html'}\nmetrics: {folder / 'metrics.json'}")


def _compare(args: argparse.Namespace) -> int:
    if len(args.dirs) != 2:
        return _usage("compare takes two evaluation folders: DIR_A DIR_B")
    from agentflow.eval import compare

    a, b = compare.load(args.dirs[0]), compare.load(args.dirs[1])
    tested, notes = compare.tested_rows(a, b)
    print(compare.table(tested, f"A:{a.name}", f"B:{b.name}"))
    for note in notes.values():
        print(f"warning: caches differ: {note}")
    html = Path(args.html) if args.html else b.folder / "compare.html"
    html.write_text(compare.render(a, b, ui_url=args.ui_url), encoding="utf-8")
    print(f"compare page: {html}", file=sys.stderr)
    if args.judge:
        return _judge(args, a, b)
    return EXIT_OK


def _judge(args: argparse.Namespace, a: Any, b: Any) -> int:
    """``compare --judge``: the judge's pairwise verdicts on the shared items; DIR_B/judge.json."""
    import asyncio
    import json

    from agentflow.errors import ConfigError, ModelError
    from agentflow.eval.pairwise import compare_pairwise
    from agentflow.models import build_router

    items = _shared_answers(a, b)
    if not items:
        print("agentflow: error: the two evaluations share no item that both answered", file=sys.stderr)
        return EXIT_USAGE
    router = build_router(profile=args.profile)
    try:
        router.check_alias(args.judge, where="--judge")
        report = asyncio.run(compare_pairwise(router, args.judge, items, name_a=a.name, name_b=b.name,
                                              candidate_families=_families(a, b),
                                              concurrency=args.concurrency))
    except (ConfigError, ModelError) as exc:
        print(f"agentflow: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        router.close()
    low, high = report.interval
    print(f"judge {report.judge}, {report.items} shared items, both orders: B ({b.name}) wins {report.wins_b}, "
          f"A ({a.name}) wins {report.wins_a}, ties {report.ties} (the orders disagreed or the judge said tie)")
    print(f"  B's win rate {report.win_rate_b:.3f} (95% interval {low:.3f}-{high:.3f}); position bias "
          f"{report.position_bias_rate:.3f} of items (the same position won both orders); first position "
          f"picked {report.first_position_rate:.3f} of decided judgments")
    for warning in report.warnings:
        print(f"warning: {warning}")
    out = b.folder / "judge.json"
    out.write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")
    print(f"judge verdicts: {out}", file=sys.stderr)
    return EXIT_OK


def _shared_answers(a: Any, b: Any) -> list[tuple[str, str, str, str]]:
    """``(id, question, answer_a, answer_b)`` of the items both evaluations answered."""
    items = []
    for item_id, ra in a.records.items():
        rb = b.records.get(item_id)
        if rb is None or ra.get("status") != "ok" or rb.get("status") != "ok":
            continue
        pa, pb = ra.get("prediction"), rb.get("prediction")
        if pa and pb:
            question = str((ra.get("inputs") or {}).get("question") or "")
            items.append((str(item_id), question, str(pa), str(pb)))
    return items


def _families(*evaluations: Any) -> dict[str, set[str]]:
    """Provider families of the models each evaluation's profile names (for the judge's family warning)."""
    from agentflow.errors import ConfigError
    from agentflow.models.catalog import family_of
    from agentflow.models.profiles import DEFAULT_PROFILE, load_models_config

    config = load_models_config()
    out: dict[str, set[str]] = {}
    for ev in evaluations:
        manifest = _manifest(ev.folder)
        profile = manifest.get("profile") or DEFAULT_PROFILE
        try:
            aliases = config.aliases_of(profile)
        except ConfigError:
            continue
        out[ev.name] = {f for entries in aliases.values() for e in entries
                        if (f := family_of(e.model)) is not None}
    return out


def _manifest(folder: Path) -> dict[str, Any]:
    from agentflow.eval.results import read_manifest

    return read_manifest(folder) or {}


def _ratings(args: argparse.Namespace) -> int:
    """``eval ratings``: Bradley-Terry ratings (Elo scale) from judge pairs of the folders and/or thumbs pairs."""
    import asyncio
    import itertools

    from agentflow.errors import ConfigError, ModelError
    from agentflow.eval import compare
    from agentflow.eval.pairwise import compare_pairwise, judge_games
    from agentflow.eval.ratings import feedback_games, ratings

    games: list[tuple[str, str, float]] = []
    if args.dirs:
        if not args.judge or len(args.dirs) < 2:
            return _usage("ratings over evaluation folders needs at least two folders and --judge ALIAS")
        from agentflow.models import build_router

        evaluations = [compare.load(d) for d in args.dirs]
        router = build_router(profile=args.profile)
        try:
            router.check_alias(args.judge, where="--judge")
            for a, b in itertools.combinations(evaluations, 2):
                report = asyncio.run(compare_pairwise(router, args.judge, _shared_answers(a, b), name_a=a.name,
                                                      name_b=b.name, concurrency=args.concurrency))
                games += judge_games(report)
        except (ConfigError, ModelError) as exc:
            print(f"agentflow: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        finally:
            router.close()
    if args.feedback:
        from agentflow.tracing.query import TraceReader

        with TraceReader(args.traces) as reader:
            games += feedback_games(reader.runs(tag="variant", limit=100_000))
    if not games:
        return _usage("no games: give evaluation folders with --judge, or --feedback with rated runs of "
                      "served A/B variants")
    print(f"{'player':<30} {'rating':>7}  95% interval    games  wins")
    for r in ratings(games):
        print(f"{r.player:<30} {r.rating:7.1f}  {r.low:6.1f}-{r.high:<6.1f}  {r.games:6d}  {r.wins:g}")
    return EXIT_OK
