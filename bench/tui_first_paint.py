"""Benchmark: time from `advisor tui SNAPSHOT` starting to its first screen (issue 5, < 1 s).

The real app runs in a pseudo-terminal of 120x40, as in a user's terminal; the clock stops when
the terminal has received the first frame (the tab bar) and then the report (the status line's
"N recommendations", drawn once the snapshot is loaded and analysed). Then `q` quits it.
Interpreter start-up, imports, reading and analysing the snapshot and rendering are all inside.

    uv run python bench/tui_first_paint.py [SNAPSHOT] [--runs 15]

Reports median and min-max of each, the CPU time of the whole run (start to quit; steadier than
wall time on a busy machine) and an in-process breakdown (imports, load + analyse).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _timing import Timing, user_env  # noqa: E402

DEFAULT = ROOT / "sample_snapshots" / "misbudgeted_pg18.json"
FIRST_FRAME = b"Overview"  # the tab bar: the app's first frame
REPORT = b" recommendations"  # status line and Overview: the report is on screen
TIMEOUT_S = 30.0


def one_run(snapshot: Path) -> tuple[float, float, float]:
    """(seconds to the first frame, to the report on screen, CPU seconds of the whole run)
    of one real start. CPU time barely moves with the load of a shared machine."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**user_env(), "TERM": "xterm-256color"}
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "advisor", "tui", str(snapshot)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    os.close(slave)
    seen = b""
    first = report = None
    try:
        while report is None:
            if time.perf_counter() - start > TIMEOUT_S:
                raise SystemExit(f"no report on screen after {TIMEOUT_S:g} s")
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                continue
            seen += os.read(master, 65536)
            now = time.perf_counter() - start
            if first is None and FIRST_FRAME in seen:
                first = now
            if REPORT in seen:
                report = now
        os.write(master, b"q")
        while proc.poll() is None:  # keep reading: a full pty buffer would block the app
            if time.perf_counter() - start > 2 * TIMEOUT_S:
                raise SystemExit("the app did not quit on q")
            if select.select([master], [], [], 0.2)[0]:
                try:
                    os.read(master, 65536)
                except OSError:  # EIO: the app closed the terminal
                    break
        _, _, usage = os.wait4(proc.pid, 0)
        proc.returncode = 0  # reaped above
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert first is not None
    return first, report, usage.ru_utime + usage.ru_stime


def breakdown(snapshot: Path) -> str:
    """In-process: importing the app, then loading and analysing the snapshot."""
    code = (
        "import time; t0 = time.perf_counter()\n"
        "import advisor.tui.app\n"
        "from advisor.tui.source import snapshot_source\n"
        "t1 = time.perf_counter()\n"
        f"snapshot_source({str(snapshot)!r})()\n"
        "t2 = time.perf_counter()\n"
        "print(f'imports {(t1 - t0) * 1000:.0f} ms, load + analyse {(t2 - t1) * 1000:.0f} ms')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=user_env(), cwd=ROOT
    )
    return done.stdout.strip() or done.stderr.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("snapshot", nargs="?", type=Path, default=DEFAULT)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    for _ in range(2):  # warm-up: .pyc files and the card cache, as after a first use
        one_run(args.snapshot)
    runs = [one_run(args.snapshot) for _ in range(args.runs)]
    print(f"snapshot {args.snapshot.name}, terminal 120x40, {args.runs} runs")
    print(Timing("first frame (tab bar)", [r[0] for r in runs]).line())
    print(Timing("report on screen", [r[1] for r in runs]).line())
    print(Timing("CPU time, start to quit", [r[2] for r in runs]).line())
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (2 cores)")
    print("in-process:", breakdown(args.snapshot))


if __name__ == "__main__":
    main()
