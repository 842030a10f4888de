"""pgpool-II for real: Debian's pgpool 4.3.5 in streaming-replication mode with load balancing
in front of a PostgreSQL 15 primary and a `pg_basebackup -R` standby (tests/pgpool_fixtures.py).

Routing is checked against pgpool's own decisions (SHOW POOL_NODES select_cnt before and after
each statement), children exhaustion is provoked with more clients than num_init_children,
and the CLI runs end to end (report, collect, report SNAPSHOT). The tests share one cluster
and run in file order: the clean report first, before any pinned read exists.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from advisor.cli import run as cli_run
from advisor.pooler.pgpool import read_console
from advisor.pooler.pgpool_routing import VOLATILE_BUILTINS, Catalog, route
from tests.pgpool_fixtures import (
    MISCONFIGURED,
    HeldClients,
    PgpoolCluster,
    run_reads,
    select_counts,
    setup_schema,
    write_conf,
)

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgpoolCluster]:
    with PgpoolCluster() as c:
        setup_schema(c)
        yield c


@pytest.fixture(scope="module")
def conf(cluster: PgpoolCluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_conf(cluster, tmp_path_factory.mktemp("pgpool") / "pgpool.conf")


def report(*argv: str) -> tuple[int, dict[str, Any]]:
    out = io.StringIO()
    code = cli_run(["report", *argv, "--json", "--select", "PP", "--cores", "2"], out=out)
    return code, json.loads(out.getvalue())


def rules(data: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for f in data["findings"]:
        found.setdefault(f["rule"], []).append(f)
    return found


def pgpool_recs(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in data["recommendations"] if r["kind"] == "pgpool"}


def test_clean_setup_gives_no_pgpool_findings(cluster: PgpoolCluster, conf: Path) -> None:
    run_reads(cluster, pinned=False)
    code, data = report(
        "--dsn", cluster.primary.dsn, "--pgpool-conf", str(conf), "--pgpool-dsn", cluster.dsn
    )
    assert rules(data) == {}, [f["message"] for f in data["findings"]]
    assert not [s for s in data["skipped"] if s["rule"].startswith("PP")]
    assert "num_init_children" not in pgpool_recs(data)  # nothing to raise, within budget
    assert code == 0


def test_console_reads_version_nodes_and_settings(cluster: PgpoolCluster) -> None:
    # 4.3.5 answers SHOW POOL_VERSION with an empty result set first (fixed in 4.3.6).
    with cluster.connect() as c, c.cursor() as cur:
        cur.execute("SHOW POOL_VERSION")
        first = cur.fetchall()
        assert cur.nextset() and cur.fetchall()[0][0].startswith("4.3.5")
        assert first == []
    facts = read_console(cluster.dsn)
    assert facts.version is not None and facts.version.startswith("4.3.5")
    roles = {n.node_id: (n.role, n.status, n.pg_status) for n in facts.nodes}
    assert roles == {0: ("primary", "up", "up"), 1: ("standby", "up", "up")}
    assert facts.live_settings["num_init_children"] == "3"
    assert not any("password" in k for k in facts.live_settings)
    s = facts.samples[0]
    assert s.children == 3 and s.busy >= 1 and s.executing >= 1  # the console's own child


def test_routing_predicate_agrees_with_pgpool(cluster: PgpoolCluster) -> None:
    """Each statement through pgpool: which node's select_cnt moved must be what the
    predicate says (balanceable -> standby 1, else primary 0)."""
    catalog = Catalog(
        volatile=frozenset({"app_flag", "public.app_flag"}),
        nonvolatile=frozenset({"f_stable", "public.f_stable"}),
        temp_or_unlogged=frozenset(),
    )
    statements = [
        "SELECT v FROM t WHERE id = 1",
        "SELECT f_stable(id) FROM t WHERE id = 2",
        "SELECT id, app_flag(id) FROM t WHERE id = 3",
        "SELECT random() FROM t WHERE id = 4",
        "SELECT clock_timestamp()",
        "SELECT count(*) FROM pg_class",
        "SELECT v FROM t WHERE id = 5 FOR SHARE",
        "/* tracing */ SELECT v FROM t WHERE id = 6",
        "-- tracing\nSELECT v FROM t WHERE id = 7",
        "WITH x AS (SELECT v FROM t WHERE id = 8) SELECT * FROM x",
        "SELECT now(), v FROM t WHERE id = 9",
    ]
    disagreements = []
    for sql in statements:
        before = select_counts(cluster)
        with cluster.connect() as c:
            c.execute(sql)
        after = select_counts(cluster)
        moved = {n for n in after if after[n] != before[n]}
        r = route(sql, catalog)
        assert r is not None and r.read
        expected = {1} if r.balanceable else {0}
        if moved != expected:
            disagreements.append((sql, moved, r))
    assert disagreements == []


def test_volatile_builtins_are_volatile_on_a_real_server(cluster: PgpoolCluster) -> None:
    with cluster.primary.connect() as c:
        rows = c.execute(
            "SELECT proname, bool_and(provolatile = 'v') FROM pg_proc "
            "WHERE proname = ANY(%s) GROUP BY proname",
            (sorted(VOLATILE_BUILTINS),),
        ).fetchall()
    found = dict(rows)
    assert set(found) == VOLATILE_BUILTINS
    assert all(found.values()), [k for k, v in found.items() if not v]


def test_children_exhaustion_and_idle_clients(cluster: PgpoolCluster, conf: Path) -> None:
    """3 children: 2 clients stay idle for 11 s, the advisor's console takes the third, and
    one more client really waits until an idle one leaves."""
    held = HeldClients(cluster, idle=2)
    waiter = None
    try:
        time.sleep(11)
        waiter = HeldClients(cluster, idle=0, queued=1, delay=1.0)
        code, data = report(
            "--dsn",
            cluster.primary.dsn,
            "--pgpool-conf",
            str(conf),
            "--pgpool-dsn",
            cluster.dsn,
            "--sample",
            "2.5",
        )
    finally:
        held.close()
    assert waiter is not None
    waiter.close()
    # It got a child only when the console's session ended, after waiting in the queue.
    assert waiter.queued_connected and waiter.queued_connected[0] >= 1.0
    found = rules(data)
    assert "PP02" in found and "PP03" in found
    pp02 = found["PP02"][0]["evidence"]
    assert pp02["children"] == 3 and pp02["full_samples"] >= 3
    assert "1 clients waited" in pp02["waiting"]  # the accept queue of the listen socket
    pp03 = found["PP03"][0]["evidence"]
    assert pp03["idle"] == 2 and float(pp03["longest"]) >= 10
    rec = pgpool_recs(data)["num_init_children"]
    assert int(rec["recommended"]) > int(rec["current"]) == 3
    assert "accept queue" in rec["formula"] and "budget cap" in rec["formula"]
    assert code == 1


def test_pinned_reads_show_in_select_cnt_and_rules(cluster: PgpoolCluster, conf: Path) -> None:
    before = select_counts(cluster)
    run_reads(cluster, pinned=True, n=120)
    after = select_counts(cluster)
    assert after[0] - before[0] >= 3 * 120  # pinned: the primary answered them
    assert after[1] == before[1]
    code, data = report(
        "--dsn", cluster.primary.dsn, "--pgpool-conf", str(conf), "--pgpool-dsn", cluster.dsn
    )
    found = rules(data)
    causes = " ".join(f["evidence"]["cause"] for f in found["PP05"])
    assert "app_flag()" in causes and "random()" in causes and "comment" in causes
    assert "ALTER FUNCTION app_flag(integer) STABLE;" in " ".join(f["fix"] for f in found["PP05"])
    assert "PP04" in found and "PP07" in found
    assert code == 1


def test_backend_budget_is_checked_on_every_node(cluster: PgpoolCluster, tmp_path: Path) -> None:
    """8 x 2 per node: 17 fits the primary's 27 slots, 33 with cancels does not; the standby's
    37 slots take both. 20 x 2 overflows both nodes even without cancels."""
    bad = write_conf(cluster, tmp_path / "budget.conf", num_init_children=8, max_pool=2)
    _, data = report("--dsn", cluster.primary.dsn, "--pgpool-conf", str(bad))
    pp01 = rules(data)["PP01"]
    assert [(f["evidence"]["node"], f["severity"]) for f in pp01] == [(0, "warning")]
    ev = pp01[0]["evidence"]
    assert (ev["max_connections"], ev["available"], ev["need_cancel"]) == (30, 27, 2 * 16 + 2)
    assert ev["limits_source"] == "read from node 0"
    worse = write_conf(cluster, tmp_path / "worse.conf", num_init_children=20, max_pool=2)
    _, data = report("--dsn", cluster.primary.dsn, "--pgpool-conf", str(worse))
    nodes = {f["evidence"]["node"]: f["severity"] for f in rules(data)["PP01"]}
    assert nodes == {0: "critical", 1: "critical"}
    rec = pgpool_recs(data)
    assert rec["num_init_children"]["recommended"] == str((27 - 2) // 4)
    # The console alone: the running values, limits read from each node with its credentials.
    _, data = report("--pgpool-dsn", cluster.dsn)
    assert "PP01" not in {s["rule"] for s in data["skipped"]}
    assert "PP01" not in rules(data)  # 3 x 1, doubled, + 2 checks = 8 of 27


def test_misconfigured_conf_with_a_live_server(cluster: PgpoolCluster, tmp_path: Path) -> None:
    bad = write_conf(cluster, tmp_path / "bad.conf", **MISCONFIGURED)
    out = io.StringIO()
    code = cli_run(
        ["report", "--dsn", cluster.primary.dsn, "--pgpool-conf", str(bad), "--json"], out=out
    )
    assert "s3cret-pw" not in out.getvalue()
    found = rules(json.loads(out.getvalue()))
    assert {"PP01", "PP04", "PP06", "PP08"} <= set(found)
    assert len(found["PP08"]) == 3
    assert code == 1


def test_collect_then_report_snapshot_gives_the_same_findings(
    cluster: PgpoolCluster, conf: Path, tmp_path: Path
) -> None:
    snap = tmp_path / "snap.json"
    args = ["--dsn", cluster.primary.dsn, "--pgpool-conf", str(conf), "--pgpool-dsn", cluster.dsn]
    assert cli_run(["collect", *args, "-o", str(snap)]) == 0
    _, live = report(*args)
    _, saved = report(str(snap))
    assert sorted(f["rule"] for f in saved["findings"]) == sorted(
        f["rule"] for f in live["findings"]
    )
    assert json.loads(snap.read_text())["pgpool"]["version"].startswith("4.3.5")


def test_unreachable_console_exits_3(cluster: PgpoolCluster) -> None:
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "advisor",
            "report",
            "--pgpool-dsn",
            "host=127.0.0.1 port=1 user=postgres password=hunter2 connect_timeout=2",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 3
    assert res.stderr.startswith("advisor: pgpool console:") and "hunter2" not in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
