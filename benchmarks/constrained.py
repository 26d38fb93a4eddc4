"""Constrained decoding, per token: the model server's former hand-written JSON-schema automaton against llguidance.

Side by side in one run on the same tokenizer (SmolLM2-135M-Instruct's, from the packaged GGUF through the
model server's own loader; ``--tokenizer stories`` for the 512-token stories260K one): for a few schemas, a document
that matches each is tokenized and fed token by token, timing what the engine does per step and sequence: the
token mask (the former engine's ``allowed``; llguidance's bitmask unpacked to the bool mask the sampler takes)
and the advance past the token (llguidance's includes the closing-path upkeep). ``cold`` is the first document
on a fresh compiler, ``next`` a second document of the same schema after it, ``replay`` the first document again
(the former engine memoised masks per parser state, so a replay is its best case).
Grammar compilation is timed apart. The former engine's source comes from git (the commit before it was
removed). Prints a table, then one JSON line.

    python benchmarks/constrained.py [--tokenizer smollm2|stories] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agentflow.model_server.constrained import GrammarCompiler, ResponseFormat  # noqa: E402
from agentflow.model_server.tokenizer import Tokenizer  # noqa: E402

MAX_TOKENS = 256
CASES: list[tuple[str, dict[str, Any] | None, Any, Any]] = [
    ("judge", {
        "type": "object",
        "properties": {
            "verdict": {"enum": ["supported", "unsupported"]},
            "score": {"type": "integer", "minimum": 1, "maximum": 5},
            "reason": {"type": "string", "maxLength": 120},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 3},
        },
        "required": ["verdict", "score", "reason"],
        "additionalProperties": False,
    }, {"verdict": "supported", "score": 4, "reason": "The answer repeats the population figure given in the "
        "second document and cites it.", "tags": ["numbers", "grounded"]},
     {"verdict": "unsupported", "score": 2, "reason": "No document states when the hive was moved; the date is "
      "invented.", "tags": ["dates"]}),
    ("cited_answer", {
        "type": "object",
        "properties": {
            "answer": {"type": "string", "maxLength": 300},
            "citations": {"type": "array", "maxItems": 4, "items": {
                "type": "object",
                "properties": {"doc": {"type": "integer", "minimum": 1, "maximum": 20},
                               "quote": {"type": "string", "maxLength": 120}},
                "required": ["doc", "quote"]}},
            "abstain": {"type": "boolean"},
        },
        "required": ["answer", "citations", "abstain"],
    }, {"answer": "Honey bees swarm in late spring when the colony outgrows its hive [DOC 2], and a swarm "
        "settles within a day or two [DOC 5].", "citations": [
            {"doc": 2, "quote": "colonies swarm in late spring"}, {"doc": 5, "quote": "within a day or two"}],
        "abstain": False},
     {"answer": "A queen lays up to two thousand eggs a day in summer [DOC 1].", "citations": [
         {"doc": 1, "quote": "up to two thousand eggs a day"}], "abstain": False}),
    ("json_object", None, {"route": "knowledge", "queries": ["bee swarm season", "why do bees swarm"],
                           "meta": {"lang": "en", "n": 2, "ok": True, "score": 0.75}},
     {"route": "chitchat", "reply": "Hello! Ask me about bees.", "confidence": 0.9, "flags": [None, False]}),
]


def former_engine() -> tuple[types.ModuleType, types.ModuleType]:
    """The hand-written automaton (``json_schema.py``, ``constrained.py``) as it was before llguidance."""
    removed = subprocess.run(["git", "log", "-1", "--format=%H", "--diff-filter=D", "--",
                              "agentflow/model_server/json_schema.py"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
    rev = f"{removed}^" if removed else "HEAD"

    def load(path: str, name: str) -> types.ModuleType:
        source = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout
        module = types.ModuleType(name)
        sys.modules[name] = module
        exec(compile(source, f"{rev}:{path}", "exec"), module.__dict__)  # noqa: S102 - our own history
        return module

    grammar = load("agentflow/model_server/json_schema.py", "agentflow.model_server.json_schema")
    constrained = load("agentflow/model_server/constrained.py", "former_constrained")
    return grammar, constrained


def load_tokenizer(which: str) -> Tokenizer:
    if which == "stories":
        return Tokenizer.load(ROOT.parent / "shared" / "models" / "stories260K")
    from agentflow.model_server.packaged import packaged_model_path

    path = packaged_model_path("smollm2-135m")
    return Tokenizer.load_gguf(path, model_name="smollm2-135m")


def run_former(constrained: types.ModuleType, compiler: Any, tok: Tokenizer, schema: dict[str, Any] | None,
               ids: list[int], eos: list[int]) -> float:
    c = compiler.constraint(schema, eos)
    start = time.perf_counter()
    for i, t in enumerate(ids):
        mask = c.allowed(MAX_TOKENS - i)
        assert mask[t], f"the former engine refused token {i} ({tok.mid_text(t)!r})"
        c.advance(t, tok.mid_text(t))
    assert c.complete
    return (time.perf_counter() - start) / len(ids)


def run_llguidance(compiler: GrammarCompiler, compiled: Any, ids: list[int], vocab: int) -> float:
    c = compiler.constraint(compiled)
    start = time.perf_counter()
    for i, t in enumerate(ids):
        mask = compiler.masks([(c, 0)], 1, vocab)
        assert mask[0, t], f"llguidance refused token {i}"
        assert c.accept(t, MAX_TOKENS - i - 1) == t
    assert c.complete
    return (time.perf_counter() - start) / len(ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", choices=("smollm2", "stories"), default="smollm2")
    parser.add_argument("--repeat", type=int, default=3, help="warm passes (the best is kept)")
    args = parser.parse_args()
    tok = load_tokenizer(args.tokenizer)
    eos = [tok.hf.eos_token_id if tok.hf.eos_token_id is not None else 2]
    vocab = tok.vocab_size
    _, former = former_engine()

    start = time.perf_counter()
    special = set(tok.hf.all_special_ids)
    anchor_ids = tok.hf.encode("a", add_special_tokens=False)
    anchor = anchor_ids[-1] if anchor_ids and tok.hf.decode(anchor_ids[-1:]) == "a" else None
    trie = former.TokenTrie.build(former.token_texts(lambda x: str(tok.hf.decode(x)), vocab, special, anchor), vocab)
    former_setup = time.perf_counter() - start
    start = time.perf_counter()
    ll = GrammarCompiler(tok.hf, vocab_size=vocab, eos_ids=eos)
    ll_setup = time.perf_counter() - start

    rows: list[dict[str, Any]] = []
    totals = {"former": [0.0, 0.0, 0.0], "llguidance": [0.0, 0.0, 0.0]}
    for name, schema, doc, other in CASES:
        ids = ll.ll.tokenize_str(json.dumps(doc))  # no SentencePiece dummy-prefix space in front
        ids2 = ll.ll.tokenize_str(json.dumps(other))
        fc = former.ConstraintCompiler(trie)
        t0 = time.perf_counter()
        former.Grammar(former.compile_schema(schema))
        f_compile = time.perf_counter() - t0
        f_cold = run_former(former, fc, tok, schema, ids, eos)
        f_next = run_former(former, fc, tok, schema, ids2, eos)
        f_warm = min(run_former(former, fc, tok, schema, ids, eos) for _ in range(args.repeat))
        t0 = time.perf_counter()
        fmt = ResponseFormat("json_schema", schema) if schema else ResponseFormat("json_object", None)
        compiled = ll.compile(fmt)
        l_compile = time.perf_counter() - t0
        l_cold = run_llguidance(ll, compiled, ids, vocab)
        l_next = run_llguidance(ll, compiled, ids2, vocab)
        l_warm = min(run_llguidance(ll, compiled, ids, vocab) for _ in range(args.repeat))
        rows.append({"schema": name, "tokens": len(ids), "tokens_next": len(ids2), "former_cold_us": f_cold * 1e6,
                     "former_next_us": f_next * 1e6, "llguidance_next_us": l_next * 1e6,
                     "former_warm_us": f_warm * 1e6, "llguidance_cold_us": l_cold * 1e6,
                     "llguidance_warm_us": l_warm * 1e6, "former_compile_ms": f_compile * 1e3,
                     "llguidance_compile_ms": l_compile * 1e3})
        for key, cold, warm, nxt in (("former", f_cold, f_warm, f_next), ("llguidance", l_cold, l_warm, l_next)):
            totals[key][0] += cold * len(ids)
            totals[key][1] += warm * len(ids)
            totals[key][2] += nxt * len(ids2)

    n = sum(r["tokens"] for r in rows)
    n2 = sum(r["tokens_next"] for r in rows)
    print(f"tokenizer {args.tokenizer} (vocab {vocab}); max_tokens {MAX_TOKENS}; setup: former trie "
          f"{former_setup:.2f} s, llguidance tokenizer {ll_setup:.2f} s")
    print("us per token, former / llguidance (x: how many times faster llguidance is); cold: first document on a "
          "fresh compiler; next: a second document of the same schema; replay: the first document again")
    print(f"{'schema':14}{'tokens':>7}{'cold':>22}{'x':>8}{'next':>22}{'x':>8}{'replay':>18}{'x':>7}")
    for r in rows:
        cells = ""
        for key in ("cold", "next", "warm"):
            f, g = r[f"former_{key}_us"], r[f"llguidance_{key}_us"]
            width = 18 if key == "warm" else 22
            cells += f"{f'{f:.1f} / {g:.1f}':>{width}}{f / g:>{7 if key == 'warm' else 8}.2f}"
        print(f"{r['schema']:14}{r['tokens']:>7}{cells}")
    summary = {
        "tokenizer": args.tokenizer, "vocab": vocab, "tokens": n,
        "former_cold_us_per_token": round(totals["former"][0] / n * 1e6, 1),
        "former_warm_us_per_token": round(totals["former"][1] / n * 1e6, 1),
        "llguidance_cold_us_per_token": round(totals["llguidance"][0] / n * 1e6, 1),
        "llguidance_warm_us_per_token": round(totals["llguidance"][1] / n * 1e6, 1),
        "former_next_us_per_token": round(totals["former"][2] / n2 * 1e6, 1),
        "llguidance_next_us_per_token": round(totals["llguidance"][2] / n2 * 1e6, 1),
        "speedup_cold": round(totals["former"][0] / totals["llguidance"][0], 2),
        "speedup_next": round(totals["former"][2] / totals["llguidance"][2], 2),
        "speedup_warm": round(totals["former"][1] / totals["llguidance"][1], 2),
        "former_setup_s": round(former_setup, 2), "llguidance_setup_s": round(ll_setup, 2),
        "cases": [{k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
