"""`advisor demo --no-tui` as a whole process (issue 5): the time from the command to the
printed report, and where it goes, from the demo's own progress lines (seconds since start).

    uv run python bench/demo_bench.py [--runs 3]

Each run starts its own PostgreSQL 18, builds the shop database (500,000 sales rows), runs
the workload, samples pg_stat_activity for 1.5 s, reports and removes the server.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import Timing, user_env

ROOT = Path(__file__).resolve().parent.parent
STEP = re.compile(r"^advisor demo \[\s*([\d.]+)s\] (.*?)(?::| \(| \.\.\.)", re.M)


def one_run() -> tuple[float, dict[str, float]]:
    """Wall time and the start time of each phase (its progress line up to ':', '(' or '...';
    the workload's sessions are one phase)."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "advisor", "demo", "--no-tui", "--fail-on", "never"],
        cwd=ROOT,
        env=user_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"advisor demo failed (exit {proc.returncode}):\n{proc.stderr}")
    steps: dict[str, float] = {}
    for m in STEP.finditer(proc.stderr):
        steps.setdefault(m.group(2), float(m.group(1)))
    return wall, steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    one_run()  # warm-up: writes the .pyc files, as a first use would
    walls, phases = [], []
    for _ in range(args.runs):
        wall, steps = one_run()
        walls.append(wall)
        phases.append(steps)
    print(Timing("advisor demo --no-tui", walls).line())
    names = list(phases[0])
    for name, nxt in zip(names, [*names[1:], None], strict=True):
        spans = [(p[nxt] if nxt else w) - p[name] for p, w in zip(phases, walls, strict=True)]
        print(f"  {name:<60} median {statistics.median(spans):5.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
