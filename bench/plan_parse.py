"""Benchmark: `read_plans` on a multi-megabyte partition plan against bare `json.loads`.

The plan is synthesised from a real capture: the Parallel Append of
sample_plans/pg18/ok_parallel_append.json gets its first child repeated N times, like a
3,000-partition table (without sample plans: a leaf of knowledge/artifacts/pg18_explain.json).
The text form is synthesised the same way from the matching .txt capture (skipped without it).

    uv run python bench/plan_parse.py [--children 3000] [--repeat 7]

Reports the best-of-N wall time of each and the ratio read_plans / json.loads. The target is
<= 2x for JSON (parsing only; interpreter start-up is excluded).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from advisor.plan.reader import read_plans  # noqa: E402

SAMPLE = ROOT / "sample_plans" / "pg18" / "ok_parallel_append"
FALLBACK = ROOT.parent / "shared" / "knowledge" / "artifacts" / "pg18_explain.json"


def _find_append(node: dict[str, Any]) -> dict[str, Any] | None:
    if node.get("Node Type") in ("Append", "Merge Append") and node.get("Plans"):
        return node
    for child in node.get("Plans", []):
        found = _find_append(child)
        if found is not None:
            return found
    return None


def _wrap_leaf_in_append(node: dict[str, Any]) -> dict[str, Any]:
    """No Append in the fallback plan: put its first leaf under a Parallel Append."""
    while node.get("Plans"):
        child = node["Plans"][0]
        if not child.get("Plans"):
            keys = ("Startup Cost", "Total Cost", "Plan Rows", "Plan Width")
            append = {
                "Node Type": "Append",
                "Parent Relationship": child.get("Parent Relationship", "Outer"),
                "Parallel Aware": True,
                **{k: child[k] for k in keys if k in child},
                "Plans": [child],
            }
            child["Parent Relationship"] = "Member"
            node["Plans"][0] = append
            return append
        node = child
    raise SystemExit("the fallback plan has no leaf to repeat")


def synth_json(children: int) -> str:
    path = SAMPLE.with_suffix(".json") if SAMPLE.with_suffix(".json").exists() else FALLBACK
    doc = json.loads(path.read_text())
    append = _find_append(doc[0]["Plan"]) or _wrap_leaf_in_append(doc[0]["Plan"])
    template = append["Plans"][0]
    plans = []
    for i in range(children):
        child = copy.deepcopy(template)
        child["Relation Name"] = f"events_p{i}"
        child["Alias"] = f"events_{i + 1}"
        plans.append(child)
    append["Plans"] = plans
    return json.dumps(doc, indent=2)


def synth_text(children: int) -> str:
    lines = SAMPLE.with_suffix(".txt").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "->  Parallel Seq Scan on" in line)
    col = lines[start].index("->")
    end = start + 1
    while end < len(lines) and len(lines[end]) - len(lines[end].lstrip()) > col:
        end += 1
    child = lines[start:end]
    body = [
        line.replace("events_p0 events_1", f"events_p{i} events_{i + 1}")
        for i in range(children)
        for line in child
    ]
    rest = end
    while rest < len(lines) and "->  Parallel Seq Scan on" in lines[rest]:  # drop the real siblings
        nxt = rest + 1
        while nxt < len(lines) and len(lines[nxt]) - len(lines[nxt].lstrip()) > col:
            nxt += 1
        rest = nxt
    return "\n".join(lines[:start] + body + lines[rest:]) + "\n"


def best_of(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--children", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    if not SAMPLE.with_suffix(".json").exists() and not FALLBACK.exists():
        print(f"missing {SAMPLE}.json: run scripts/capture_plans.py first", file=sys.stderr)
        return 2

    text = synth_json(args.children)
    plans = read_plans(text, "bench")
    nodes = plans[0].node_count
    t_json = best_of(lambda: json.loads(text), args.repeat)
    t_read = best_of(lambda: read_plans(text, "bench"), args.repeat)
    print(f"JSON: {len(text) / 1e6:.1f} MB, {nodes} nodes")
    print(f"  json.loads  {t_json * 1000:8.1f} ms")
    print(f"  read_plans  {t_read * 1000:8.1f} ms   ratio {t_read / t_json:.2f}x")

    framed = (
        "                QUERY PLAN\n-------------------------\n"
        + "".join(f" {line:<60}+\n" for line in text.splitlines())
        + "(1 row)\n"
    )
    t_framed = best_of(lambda: read_plans(framed, "bench"), max(1, args.repeat // 2))
    print(f"  psql-framed read_plans {t_framed * 1000:8.1f} ms   ratio {t_framed / t_json:.2f}x")

    if SAMPLE.with_suffix(".txt").exists():
        txt = synth_text(args.children)
        tplans = read_plans(txt, "bench")
        t_text = best_of(lambda: read_plans(txt, "bench"), max(1, args.repeat // 2))
        print(f"text: {len(txt) / 1e6:.1f} MB, {tplans[0].node_count} nodes")
        print(f"  read_plans  {t_text * 1000:8.1f} ms   ({t_text / t_json:.2f}x json.loads)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
