"""Capture the pgpool-II sample snapshots (sample_snapshots/pgpool_*_pg15.json) from a real
pgpool-II 4.3 in front of a real PostgreSQL 15 primary and streaming standby.

    uv run python scripts/capture_pgpool_snapshots.py

Each file is `advisor collect --dsn <primary> [--pgpool-conf F] [--pgpool-dsn <pgpool>]` output
(cores 2, memory 4 GB given, so hardware facts do not depend on the machine). Scenarios:

* clean: pgpool with 3 children, max_pool 1, health check, sr check, delay_threshold, load
  balancing (weights 0/1); 150 plain and STABLE-function reads in autocommit.
* pinned: the same pgpool, then 150 reads each that call a VOLATILE SQL function, call random(),
  or start with a /* tracing */ comment, so pgpool sends them to the primary.
* saturated: the same pgpool; 2 clients idle for 12 s, then the console sample (3 s) while a
  third client waits for a child.
* misconfigured: pgpool.conf only (num_init_children 8, max_pool 2, load balancing off, no
  health check, no delay threshold, a clear-text sr_check_password, clear-text frontend auth,
  listen_addresses '*'), against the live primary and standby.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from advisor.collect import collect  # noqa: E402
from advisor.pooler.pgpool import gather  # noqa: E402
from advisor.snapshot import Snapshot  # noqa: E402
from tests.pgpool_fixtures import (  # noqa: E402
    MISCONFIGURED,
    HeldClients,
    PgpoolCluster,
    run_reads,
    setup_schema,
    write_conf,
)

OUT = ROOT / "sample_snapshots"
GiB = 1024**3


def snapshot(cluster: PgpoolCluster, conf: Path | None, console: bool, sample: float) -> Snapshot:
    snap = collect(cluster.primary.dsn, cores=2, memory=4 * GiB)
    snap.pgpool = gather(
        str(conf) if conf else None,
        cluster.dsn if console else None,
        cluster.primary.dsn,
        sample_seconds=sample,
    )
    return snap


def main() -> None:
    with PgpoolCluster() as cluster, tempfile.TemporaryDirectory() as tmp:
        setup_schema(cluster)
        conf = write_conf(cluster, Path(tmp) / "pgpool.conf")
        run_reads(cluster, pinned=False)
        snapshot(cluster, conf, True, 1).save(OUT / "pgpool_clean_pg15.json")
        bad = write_conf(cluster, Path(tmp) / "pgpool_misconfigured.conf", **MISCONFIGURED)
        snapshot(cluster, bad, False, 0).save(OUT / "pgpool_misconfigured_pg15.json")
        run_reads(cluster, pinned=True)
        snapshot(cluster, conf, True, 1).save(OUT / "pgpool_pinned_pg15.json")
        held = HeldClients(cluster, idle=2)
        time.sleep(12)
        waiting = HeldClients(cluster, idle=0, queued=1, delay=1.0)
        try:
            snapshot(cluster, conf, True, 3).save(OUT / "pgpool_saturated_pg15.json")
        finally:
            held.close()
            waiting.close()
    print("wrote", ", ".join(p.name for p in sorted(OUT.glob("pgpool_*_pg15.json"))))


if __name__ == "__main__":
    main()
