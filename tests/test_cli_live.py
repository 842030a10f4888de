"""`advisor collect` and `advisor report` against real servers, through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

from advisor.pgserver import PgServer
from tests.conftest import run_advisor as advisor


def test_snapshot_report_equals_live_report(make_pg: object, tmp_path: Path) -> None:
    pg: PgServer = make_pg(18, max_parallel_workers_per_gather=0)  # type: ignore[operator]
    snap = tmp_path / "snap.json"
    proc = advisor("collect", "--dsn", pg.dsn, "-o", str(snap))
    assert proc.returncode == 0, proc.stderr
    assert "Wrote" in proc.stderr

    offline = advisor("report", str(snap), "--json")
    live = advisor("report", "--dsn", pg.dsn, "--json")
    assert offline.returncode == live.returncode == 1, offline.stderr + live.stderr
    off, on = json.loads(offline.stdout), json.loads(live.stdout)
    assert off["target"]["mode"] == "snapshot" and on["target"]["mode"] == "live"
    assert off["target"]["server_version_num"] >= 180000
    assert off["hardware"]["cores_source"] in ("cgroup", "host")  # loopback: trusted
    # The same facts give the same judgement, live or from the file.
    assert off["findings"] == on["findings"]
    pq001 = [f for f in off["findings"] if f["rule"] == "PQ001"]
    assert pq001, off["findings"]


def test_unreachable_server_exits_3_without_the_password() -> None:
    proc = advisor(
        "report", "--dsn", "host=127.0.0.1 port=1 user=app password=s3cret connect_timeout=3"
    )
    assert proc.returncode == 3
    assert "s3cret" not in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_bad_snapshot_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "snap.json"
    bad.write_text('{"schema_version": 1, "tool": ')
    proc = advisor("report", str(bad))
    assert proc.returncode == 2
    assert str(bad) in proc.stderr and "Traceback" not in proc.stderr
