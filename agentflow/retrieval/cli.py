"""``agentflow ingest PATH... --collection NAME``: put files into a collection, incrementally.

Imports stay inside the functions so ``agentflow --help`` does not load numpy, torch or Qdrant.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

_EPILOG = """\
examples:
  agentflow ingest docs/ --collection docs
  agentflow ingest "notes/**/*.md" --collection notes --chunker markdown --prune
  agentflow ingest corpus.jsonl --collection papers --field-map text=abstract,title=title,id=doc_id
  agentflow ingest docs/ --collection docs --store http://localhost:6333

Re-running writes only what changed: unchanged files write nothing, a changed file replaces its
chunks, and --prune removes the chunks of files that are no longer among PATHs.
"""


def add_parser(subparsers: Any) -> None:
    """Register the ``ingest`` subcommand on an argparse subparsers object."""
    parser = subparsers.add_parser(
        "ingest",
        help="ingest files into a collection (embedded Qdrant by default)",
        description="Ingest .txt, .md, .html, .pdf and .jsonl files into a collection: chunk, "
        "embed (dense MiniLM + BM25), store in Qdrant.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files, folders or glob patterns")
    parser.add_argument("--collection", "-c", required=True, help="collection name")
    parser.add_argument(
        "--prune", action="store_true", help="remove chunks of files no longer among PATHs"
    )
    parser.add_argument(
        "--chunker",
        choices=("auto", "tokens", "markdown", "sentences"),
        default="auto",
        help="auto (default): markdown headings for .md/.html, token windows otherwise",
    )
    parser.add_argument("--chunk-size", type=int, default=180, help="words per chunk (180)")
    parser.add_argument("--chunk-overlap", type=int, default=30, help="words of overlap (30)")
    parser.add_argument(
        "--field-map",
        default=None,
        metavar="MAP",
        help="for .jsonl: text=FIELD,title=FIELD,id=FIELD[,metadata=F1+F2]",
    )
    parser.add_argument(
        "--store",
        default=None,
        metavar="URL",
        help="a Qdrant URL (http://host:6333; key from QDRANT_API_KEY), 'embedded' "
        "(default: .agentflow/qdrant under --root) or 'embedded:PATH' (another folder)",
    )
    parser.add_argument(
        "--embedder", default="offline/minilm",
        help="offline/minilm (default, offline; 'minilm' also works), hash or a LiteLLM model name"
    )
    parser.add_argument("--root", default=".", help="folder that paths and .agentflow/ are under")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``agentflow ingest`` with parsed arguments; returns the exit code."""
    import asyncio

    from pydantic import ValidationError

    from agentflow.errors import AgentflowError
    from agentflow.retrieval.catalog import open_store, shared_embedder
    from agentflow.retrieval.chunking import ChunkingConfig
    from agentflow.retrieval.ingestion import ingest

    try:
        chunking = ChunkingConfig(
            chunker=args.chunker, size=args.chunk_size, overlap=args.chunk_overlap
        )
    except ValidationError as exc:
        print(f"error: invalid chunking options: {exc.errors()[0]['msg']}", file=sys.stderr)
        return 2

    async def main() -> int:
        store = open_store(args.collection, args.store, base_dir=args.root)
        try:
            report = await ingest(
                args.paths,
                store,
                embedder=shared_embedder(args.embedder),
                chunking=chunking,
                field_map=args.field_map,
                root=args.root,
                prune=args.prune,
                progress=not args.no_progress,
            )
        finally:
            await store.close()
        print(report.summary())
        return 0

    try:
        return asyncio.run(main())
    except AgentflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "interrupted: documents written so far are complete; run again to finish",
            file=sys.stderr,
        )
        return 130
