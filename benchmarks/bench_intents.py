"""Field accuracy of reading requests into intents, per reader, on the labelled requests.

Readers: the rules alone (backend none), the model's answer alone, and the two merged (what
`parse_intent` returns). Two sets: tests/fixtures/intents.jsonl (66 requests, half Chinese;
the rules were written while looking at it, so their figure there is optimistic) and
tests/fixtures/intents_heldout.jsonl (20 requests written afterwards, not tuned on).

    .venv/bin/python benchmarks/bench_intents.py [--backend local] [--out docs/results/x.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from podrec.config import LLMConfig
from podrec.llm import make_generator
from podrec.llm.intents import (
    INTENT_SCHEMA,
    detect_language,
    intent_messages,
    merge,
    model_intent,
    parse_rules,
)
from podrec.llm.scoring import FIELDS, accuracy, load_labelled
from podrec.storage import Store

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"


def read_all(rows: list[dict], generator) -> tuple[list[tuple], dict[str, float]]:
    """(rules, model, merged) intents of every row, and the model's time and fallbacks."""
    out, seconds, fell = [], [], 0
    for row in rows:
        r = parse_rules(row["text"])
        start = time.perf_counter()
        result = generator.generate(intent_messages(row["text"]), INTENT_SCHEMA,
                                    max_tokens=120, task="intent")
        seconds.append(time.perf_counter() - start)
        if result.fell_back:
            fell += 1
            out.append((r, parse_rules(""), r))
            continue
        m = model_intent(row["text"], result.data)
        out.append((r, m, merge(m, r)))
    return out, {"ms_per_request": 1000 * sum(seconds) / len(seconds), "fell_back": fell}


def scores(rows: list[dict], read: list[tuple], model_id: str, timing: dict) -> dict[str, dict]:
    names = ["rules", f"model ({model_id})", "model + rules"]
    res: dict[str, dict] = {n: accuracy([(t[i], row) for t, row in zip(read, rows, strict=True)])
                            for i, n in enumerate(names)}
    res["timing"] = timing
    return res


def table(name: str, n: int, res: dict[str, dict]) -> list[str]:
    lines = [f"\n### {name} ({n} requests)\n",
             "| reader | " + " | ".join(FIELDS) + " | all fields |",
             "|---" * (len(FIELDS) + 2) + "|"]
    for reader, acc in res.items():
        if reader != "timing":
            lines.append(f"| {reader} | " + " | ".join(f"{acc[f]:.2f}" for f in FIELDS)
                         + f" | {acc['all']:.2f} |")
    t = res["timing"]
    lines.append(f"\nmodel: {t['ms_per_request']:.0f} ms a request (2 threads), "
                 f"{t['fell_back']} fell back")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="local")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    # Answers are kept in a store beside the other benchmark caches: a re-run is free.
    store = Store("sqlite:///.cache/bench-llm.db")
    generator = make_generator(LLMConfig(backend=args.backend, timeout_s=120), store)
    results, lines = {}, []
    for name in ("intents", "intents_heldout"):
        rows = load_labelled(FIXTURES / f"{name}.jsonl")
        read, timing = read_all(rows, generator)
        for lang in ("en", "zh", None):
            keep = [i for i, r in enumerate(rows)
                    if lang is None or detect_language(r["text"]) == lang]
            key = f"{name}:{lang or 'all'}"
            results[key] = scores([rows[i] for i in keep], [read[i] for i in keep],
                                  generator.model_id, timing)
            lines += table(f"{name}.jsonl, {lang or 'all'}", len(keep), results[key])
    generator.close()
    print("\n".join(lines))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
