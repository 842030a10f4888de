"""Robustness report: every property of every parser fuzz module, >= 100,000 cases in total.

Discovers `tests/test_*fuzz.py` (each exposes `PROPERTIES` and `run_property(name, n)`),
splits the total evenly across all their properties, runs each under hypothesis with random
(not derandomized) data, and counts the cases actually executed and the crashes (a property
that fails: hypothesis stops at the first failure and prints the shrunk example).

    uv run python bench/robustness.py [--total 100000] [--only plan] [--json OUT]

Not part of CI (minutes, not seconds); the suite runs a few hundred cases per property.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import math
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def fuzz_modules(only: str | None) -> list[str]:
    names = sorted(p.stem for p in (ROOT / "tests").glob("test_*fuzz.py"))
    return [n for n in names if only is None or only in n]


def _counting(fn: Callable[..., None], counter: list[int]) -> Callable[..., None]:
    @functools.wraps(fn)  # hypothesis reads the wrapped signature
    def wrapper(*args: Any, **kwargs: Any) -> None:
        counter[0] += 1
        fn(*args, **kwargs)

    return wrapper


def run(total: int, only: str | None) -> list[dict[str, Any]]:
    modules = {name: importlib.import_module(f"tests.{name}") for name in fuzz_modules(only)}
    props = [(m, p) for m, mod in modules.items() for p in mod.PROPERTIES]
    if not props:
        raise SystemExit("no tests/test_*fuzz.py module with PROPERTIES found")
    per = math.ceil(total / len(props))
    print(f"{len(props)} properties in {len(modules)} modules, {per} cases each", flush=True)
    results = []
    for mod_name, prop in props:
        mod = modules[mod_name]
        fn, strategies = mod.PROPERTIES[prop]
        counter = [0]
        mod.PROPERTIES[prop] = (_counting(fn, counter), strategies)
        start = time.perf_counter()
        error = None
        try:
            mod.run_property(prop, per)
        except Exception as exc:  # a crash: record it whole, keep going with the others
            error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        finally:
            mod.PROPERTIES[prop] = (fn, strategies)
        row = {
            "module": mod_name,
            "property": prop,
            "cases": counter[0],
            "seconds": round(time.perf_counter() - start, 1),
            "crash": error,
        }
        results.append(row)
        print(json.dumps(row), flush=True)
    return results


def markdown(results: list[dict[str, Any]]) -> str:
    lines = ["| module | property | cases | time | crashes |", "|---|---|---|---|---|"]
    for r in results:
        crash = "0" if r["crash"] is None else f"1: {r['crash'].splitlines()[0][:80]}"
        lines.append(
            f"| {r['module']} | {r['property']} | {r['cases']:,} | {r['seconds']:.0f} s | {crash} |"
        )
    cases = sum(r["cases"] for r in results)
    crashes = sum(r["crash"] is not None for r in results)
    secs = sum(r["seconds"] for r in results)
    lines.append(
        f"| **total** | {len(results)} properties | **{cases:,}** | {secs:.0f} s | **{crashes}** |"
    )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--total", type=int, default=100_000, help="cases across all properties")
    ap.add_argument("--only", help="only fuzz modules whose name contains this (e.g. plan)")
    ap.add_argument("--json", metavar="OUT", help="also write the rows as JSON")
    args = ap.parse_args()
    results = run(args.total, args.only)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(markdown(results))
    sys.exit(1 if any(r["crash"] for r in results) else 0)


if __name__ == "__main__":
    main()
