"""How close a single PgBouncer gets to its CPU ceiling on this machine (PB20).

    uv run python bench/pgbouncer_cpu.py [--clients 48] [--seconds 6] [--quota 0.2]

PostgreSQL 18 and Debian's PgBouncer (transaction pool of 4) are started by the script;
pgbench -M simple runs `SELECT 1` with -j 2 through PgBouncer in three placements:
everything free, PgBouncer pinned alone to CPU 0 with pgbench and PostgreSQL on CPU 1
(taskset), and PgBouncer in a cgroup with a CPU quota (root only). For each: PgBouncer's CPU
share over a 3 s console window (as `advisor collect` measures it), its ceiling, max
cl_waiting, pgbench's TPS and whether PB20 fires.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from poolers_bouncer import PgBouncer, cpu_quota  # noqa: E402

from advisor.engine import Facts, analyse  # noqa: E402
from advisor.pgserver import PgServer  # noqa: E402
from advisor.pooler.pgbouncer import collect_pgbouncer  # noqa: E402


def pin(pid: int, cpu: str) -> None:
    subprocess.run(["taskset", "-a", "-p", "-c", cpu, str(pid)], check=True, capture_output=True)


def one(pg: PgServer, placement: str, args: argparse.Namespace, script: Path) -> str:
    b = PgBouncer(
        pg, settings={"pool_mode": "transaction", "default_pool_size": 4, "max_client_conn": 300}
    ).start()
    assert b.proc is not None
    cmd = ["pgbench", "-n", "-M", "simple", "-f", str(script), "-c", str(args.clients)]
    cmd += ["-j", "2", "-T", str(args.seconds), "postgres"]
    env = dict(os.environ, PGHOST="127.0.0.1", PGPORT=str(b.port), PGUSER="postgres")
    postmaster = int((pg.datadir / "postmaster.pid").read_text().split()[0])
    limit: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if placement == "taskset":
        pin(b.proc.pid, "0")
        pin(postmaster, "1")  # backends forked later inherit it
        cmd = ["taskset", "-c", "1", *cmd]
    elif placement == "quota":
        limit = cpu_quota(b.proc.pid, args.quota)
    try:
        with limit:
            bench = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
            time.sleep(1.5)
            facts = collect_pgbouncer([str(b.ini_path)], [b.admin_dsn], sample_seconds=3)
            out = bench.communicate()[0]
    finally:
        if placement == "taskset":
            pin(postmaster, "0-1")
        b.stop()
    inst = facts.instances[0]
    proc, console = inst.process, inst.console
    assert proc is not None and console is not None
    tps = next((ln.split()[2] for ln in out.splitlines() if ln.startswith("tps")), "?")
    fires = bool(analyse(Facts(pgbouncer=facts), select=["PB20"]).findings)  # no server needed
    ceiling = min(1.0, proc.cpu_limit) if proc.cpu_limit else 1.0
    waiting = max(s.cl_waiting for s in console.samples)
    return (
        f"| {placement} | {proc.cpu_share:.2f} | {ceiling:g} | {proc.cpu_share / ceiling:.0%} | "
        f"{waiting} | {float(tps):,.0f} | {'yes' if fires else 'no'} |"
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=48)
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--quota", type=float, default=0.2)
    args = ap.parse_args()
    if shutil.which("pgbench") is None:
        print("pgbench is not installed: apt-get install postgresql-client-15")
        return 1
    print(f"{os.cpu_count()} CPUs, {args.clients} clients, -j 2, {args.seconds} s\n")
    print("| placement | PgBouncer cores | ceiling | of ceiling | max cl_waiting | TPS | PB20 |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp, PgServer(18) as pg:
        script = Path(tmp) / "select1.sql"
        script.write_text("SELECT 1;\n")
        for placement in ("free", "taskset", "quota"):
            try:
                print(one(pg, placement, args, script), flush=True)
            except BaseException as exc:  # pytest.skip from cpu_quota when not root
                print(f"| {placement} | not run: {exc} | | | | | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
