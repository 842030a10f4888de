"""Recommendation-quality experiment: how close does the advisor get to the best settings?

Starts a real PostgreSQL 18 with a deliberately mis-tuned configuration, loads generated data
(orders + customers, ~300 MB), and times an analytic + OLTP workload under

  (a) the server's settings,
  (b) PGTune's formulas for the same hardware (knowledge/parallel-query.md §6.2, "mixed"),
  (c) the advisor's session-settable advice, obtained by running the real collector, rules and
      recommend on that server (advisor.verify.session_advice: what `advisor verify` tries),
  (d) the best combination of a grid search over the session-settable parallel and memory
      settings (max_parallel_workers_per_gather x parallel costs x work_mem).

Only session-settable settings take part (SET in the workload's session; shared_buffers and
other restart settings stay as configured for every arm). The grid is first screened with one
pass per point; the best few are then measured again together with (a), (b) and (c) in
interleaved rounds, so every arm sees the same machine noise. Reported: median total workload
time per arm with min-max.

    uv run python bench/quality/run.py [--rows 2000000] [--rounds 5] [--variant parallel-off]

Variants (the mis-tuning): `parallel-off` (max_parallel_workers_per_gather = 0, parallel
costs raised 20x, work_mem at its default) and `low-work-mem` (the same plus work_mem = 1MB
set explicitly).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from advisor.pgserver import PgServer  # noqa: E402

MB = 1024**2

VARIANTS: dict[str, dict[str, Any]] = {
    "parallel-off": {
        "max_parallel_workers_per_gather": 0,
        "parallel_setup_cost": 20000,
        "parallel_tuple_cost": 2,
    },
    "low-work-mem": {
        "max_parallel_workers_per_gather": 0,
        "parallel_setup_cost": 20000,
        "parallel_tuple_cost": 2,
        "work_mem": "1MB",
    },
}

ANALYTIC = {
    "monthly revenue by region": (
        "SELECT region, date_trunc('month', created) AS m, count(*), sum(amount), avg(amount) "
        "FROM orders GROUP BY 1, 2"
    ),
    "revenue by segment (join)": (
        "SELECT c.segment, count(*), sum(o.amount) FROM orders o "
        "JOIN customers c USING (customer_id) WHERE o.created >= '2024-01-01' GROUP BY 1"
    ),
    "top customers (200k groups)": (
        "SELECT customer_id, sum(amount) AS s FROM orders GROUP BY 1 ORDER BY s DESC LIMIT 20"
    ),
    "distinct shipped customers": (
        "SELECT count(DISTINCT customer_id) FROM orders WHERE status = 'shipped'"
    ),
    "largest orders (top-N)": "SELECT * FROM orders ORDER BY amount DESC LIMIT 100",
    "median amount per product": (
        "SELECT product_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY amount) "
        "FROM orders GROUP BY 1"
    ),
}
OLTP_POINT = "SELECT * FROM orders WHERE order_id = %s"
OLTP_RECENT = (
    "SELECT order_id, amount, status FROM orders WHERE customer_id = %s "
    "ORDER BY created DESC LIMIT 10"
)


def load(pg: PgServer, rows: int) -> None:
    customers = max(1000, rows // 10)
    with pg.connect(autocommit=True) as c:
        c.execute(
            f"""CREATE TABLE customers AS
            SELECT g AS customer_id, (ARRAY['retail','smb','enterprise','public'])[1 + g % 4]
                   AS segment, md5(g::text) AS name
            FROM generate_series(1, {customers}) g"""
        )
        c.execute(
            f"""CREATE TABLE orders AS
            SELECT g AS order_id,
                   1 + (hashint4(g) & 2147483647) % {customers} AS customer_id,
                   1 + g % 5000 AS product_id,
                   (ARRAY['north','south','east','west','central'])[1 + g % 5] AS region,
                   (ARRAY['new','paid','shipped','returned'])[1 + (g / 7) % 4] AS status,
                   round(((hashint4(g * 31) & 65535) / 100.0)::numeric, 2) AS amount,
                   timestamp '2022-01-01' + (g % 1000) * interval '1 day' AS created,
                   md5(g::text) AS note
            FROM generate_series(1, {rows}) g"""
        )
        c.execute("ALTER TABLE orders ADD PRIMARY KEY (order_id)")
        c.execute("ALTER TABLE customers ADD PRIMARY KEY (customer_id)")
        c.execute("CREATE INDEX ON orders (customer_id, created)")
        c.execute("VACUUM ANALYZE")
        size = c.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()
        print(f"loaded {rows:,} orders, {customers:,} customers: {size[0]}", flush=True)


def workload(pg: PgServer, settings: dict[str, str], oltp: int, seed: int) -> dict[str, float]:
    """One pass: every analytic query once, then `oltp` point and range lookups; seconds."""
    times: dict[str, float] = {}
    rng = random.Random(seed)
    with pg.connect(autocommit=True) as c:
        for name, value in settings.items():
            c.execute("SELECT set_config(%s, %s, false)", (name, value))
        for name, sql in ANALYTIC.items():
            start = time.perf_counter()
            c.execute(sql).fetchall()
            times[name] = time.perf_counter() - start
        n_orders = c.execute("SELECT max(order_id) FROM orders").fetchone()[0]  # type: ignore[index]
        n_cust = c.execute("SELECT max(customer_id) FROM customers").fetchone()[0]  # type: ignore[index]
        start = time.perf_counter()
        for i in range(oltp):
            if i % 4:
                c.execute(OLTP_POINT, (rng.randint(1, n_orders),), prepare=True).fetchall()
            else:
                c.execute(OLTP_RECENT, (rng.randint(1, n_cust),), prepare=True).fetchall()
        times["OLTP lookups"] = time.perf_counter() - start
    times["total"] = sum(times.values())
    return times


def advisor_settings(pg: PgServer) -> tuple[dict[str, str], list[str], list[str]]:
    """(c): the real collector, rules and recommendations on this server."""
    from advisor import engine
    from advisor.collect import collect
    from advisor.snapshot import facts_from_snapshot
    from advisor.verify import session_advice

    snap = collect(pg.dsn)
    report = engine.analyse(facts_from_snapshot(snap))
    trials, not_verified = session_advice(snap, report)
    settings = {t.name: t.value for t in trials if t.current != t.value}
    recs = [
        f"{r.name} = {r.recommended} ({r.requires}): {r.formula}" for r in report.recommendations
    ]
    findings = sorted({f.rule for f in report.findings})
    skipped = [f"{n.name} = {n.recommended} (needs {n.requires})" for n in not_verified]
    return settings, recs + [f"not session-settable: {s}" for s in skipped], findings


def pgtune_settings(memory: int, cores: float, major: int = 18) -> dict[str, str]:
    """(b): PGTune (§6.2) for `cores` CPUs, `memory` bytes, type "mixed", 100 connections,
    database smaller than RAM. PGTune emits no parallel settings below 4 CPUs, so its
    postgresql.conf leaves them at the built-in defaults (per-gather 2, costs 1000 / 0.1)."""
    shared = memory / 4
    out: dict[str, str] = {
        "max_parallel_workers_per_gather": "2",
        "max_parallel_workers": "8",
        "parallel_setup_cost": "1000",
        "parallel_tuple_cost": "0.1",
        "effective_cache_size": f"{int(memory * 3 / 4 / 1024)}kB",
    }
    workers = 8.0
    if cores >= 4:
        workers = float(cores)
        out["max_parallel_workers_per_gather"] = str(min(4, math.ceil(cores / 2)))
        out["max_parallel_workers"] = f"{cores:g}"
    work_mem = (memory - shared) / ((100 + workers) * 3) / 2 * 1.3
    out["work_mem"] = f"{max(4 * 1024, int(work_mem / 1024))}kB"
    return out


def grid(server: dict[str, Any]) -> list[dict[str, str]]:
    """(d)'s search space: per-gather x parallel costs (server's / defaults) x work_mem."""
    costs = [
        {
            "parallel_setup_cost": str(server["parallel_setup_cost"]),
            "parallel_tuple_cost": str(server["parallel_tuple_cost"]),
        },
        {"parallel_setup_cost": "1000", "parallel_tuple_cost": "0.1"},
    ]
    points = []
    for gather, cost, wm in itertools.product(
        ("0", "1", "2"), costs, ("1MB", "4MB", "16MB", "64MB", "256MB")
    ):
        points.append({"max_parallel_workers_per_gather": gather, **cost, "work_mem": wm})
    return points


def label(settings: dict[str, str]) -> str:
    short = {
        "max_parallel_workers_per_gather": "per_gather",
        "parallel_setup_cost": "setup",
        "parallel_tuple_cost": "tuple",
        "max_parallel_workers": "pool",
        "max_parallel_maintenance_workers": "maint",
        "effective_cache_size": "ecs",
    }
    return ", ".join(f"{short.get(k, k)}={v}" for k, v in sorted(settings.items()))


def chart(summary: dict[str, dict[str, Any]], width: int = 50) -> str:
    """An ASCII bar chart of the median totals, min-max as a whisker: `###### |--|`."""
    top = max(s["max_s"] for s in summary.values())
    lines = []
    for name, s in summary.items():
        bar = round(s["median_s"] / top * width)
        lo, hi = round(s["min_s"] / top * width), round(s["max_s"] / top * width)
        row = [" "] * (width + 1)
        for i in range(lo, hi + 1):
            row[i] = "-"
        row[lo], row[hi] = "|", "|"
        for i in range(bar):
            row[i] = "#"
        lines.append(f"{name:<14} {''.join(row)} {s['median_s']:6.2f} s")
    return "\n".join(lines)


def show(summary: dict[str, dict[str, Any]], title: str) -> str:
    """Print the results table and chart; returns the name of the best grid arm."""
    names = list(summary)
    best_d = min((n for n in names if n.startswith("(d)")), key=lambda n: summary[n]["median_s"])
    d = summary[best_d]["median_s"]
    print(f"\n{title}; best grid point {best_d}\n")
    print("| arm | settings | median | min-max | vs (d) | (c)/arm, paired by round |")
    print("|---|---|---|---|---|---|")
    mine = summary["(c) advisor"].get("runs_s")
    for name in names:
        s = summary[name]
        paired = "-"
        if mine and s.get("runs_s"):  # same round = same machine load: the steadier comparison
            ratios = [c / x for c, x in zip(mine, s["runs_s"], strict=True)]
            paired = f"{statistics.median(ratios):.2f}"
        print(
            f"| {name} | {label(s['settings']) or 'as configured'} | {s['median_s']:.2f} s | "
            f"{s['min_s']:.2f}-{s['max_s']:.2f} s | {s['median_s'] / d:.2f}x | {paired} |"
        )
    print("\n" + chart(summary))
    c = summary["(c) advisor"]["median_s"]
    a, b = summary["(a) server"]["median_s"], summary["(b) PGTune"]["median_s"]
    print(f"\n(c)/(d) = {c / d:.3f} (target <= 1.10); (c)/(a) = {c / a:.3f}; (c)/(b) = {c / b:.3f}")
    return best_d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--oltp", type=int, default=2000, help="OLTP lookups per pass")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the final arms")
    ap.add_argument("--finalists", type=int, default=4, help="grid points re-measured")
    ap.add_argument("--screen-passes", type=int, default=1, help="passes per grid point (best)")
    ap.add_argument("--variant", choices=sorted(VARIANTS), default="parallel-off")
    ap.add_argument("--seed", type=int, default=1, help="order of the grid screening")
    ap.add_argument("--json", metavar="OUT", help="write all numbers as JSON")
    ap.add_argument("--show", metavar="JSON", help="only print the table of a saved --json run")
    args = ap.parse_args()
    if args.show:
        saved = json.loads(Path(args.show).read_text(encoding="utf-8"))
        show(saved["summary"], f"variant {saved['variant']}, {saved['rows']:,} rows")
        return

    mistuned = VARIANTS[args.variant]
    with PgServer(
        18, settings={"shared_preload_libraries": "pg_stat_statements", **mistuned}
    ) as pg:
        load(pg, args.rows)
        adv, recs, findings = advisor_settings(pg)
        from advisor.collect import collect

        hw = collect(pg.dsn).hardware
        assert hw.memory_bytes and hw.cores, "the experiment needs cores and RAM"
        tune = pgtune_settings(hw.memory_bytes, hw.cores)
        print(
            f"hardware: {hw.cores:g} cores ({hw.cores_source}), "
            f"{hw.memory_bytes / 1024**3:.1f} GiB ({hw.memory_source})"
        )
        print(f"findings: {', '.join(findings)}")
        print("advisor:", label(adv))
        print("pgtune: ", label(tune))

        workload(pg, {}, args.oltp, 0)  # warm the caches once
        screened = []
        points = grid(mistuned)
        # Random order: on a shared box the load drifts during the screening, and a fixed order
        # would hand that drift to one end of the grid (all per_gather = 0 points first).
        random.Random(args.seed).shuffle(points)
        for i, point in enumerate(points, 1):
            t = min(workload(pg, point, args.oltp, i)["total"] for _ in range(args.screen_passes))
            screened.append((t, point))
            print(f"grid {i:2}/{len(points)} {t:7.2f} s  {label(point)}", flush=True)
        screened.sort(key=lambda x: x[0])
        finalists = [p for _, p in screened[: args.finalists]]

        arms: dict[str, dict[str, str]] = {"(a) server": {}, "(b) PGTune": tune, "(c) advisor": adv}
        for i, p in enumerate(finalists, 1):
            arms[f"(d) grid #{i}"] = p
        runs: dict[str, list[dict[str, float]]] = {k: [] for k in arms}
        names = list(arms)
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]  # rotate who goes first
            for name in order:
                runs[name].append(workload(pg, arms[name], args.oltp, 1000 + r))
            totals = ", ".join(f"{n} {runs[n][-1]['total']:.2f}" for n in names)
            print(f"round {r + 1}/{args.rounds}: {totals}", flush=True)

    summary = {
        name: {
            "settings": arms[name],
            "runs_s": [x["total"] for x in runs[name]],
            "median_s": statistics.median(x["total"] for x in runs[name]),
            "min_s": min(x["total"] for x in runs[name]),
            "max_s": max(x["total"] for x in runs[name]),
            "per_query_median_s": {
                q: statistics.median(x[q] for x in runs[name]) for q in runs[name][0]
            },
        }
        for name in names
    }
    best_d = show(summary, f"variant {args.variant}, {args.rows:,} rows, {args.rounds} rounds")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "variant": args.variant,
                    "mistuned": mistuned,
                    "rows": args.rows,
                    "findings": findings,
                    "recommendations": recs,
                    "screened": [{"total_s": t, "settings": p} for t, p in screened],
                    "summary": summary,
                    "best_grid": best_d,
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )


if __name__ == "__main__":
    main()
