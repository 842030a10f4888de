"""Recommendations on the real sample snapshots: values follow the formulas for each snapshot's
cores and memory, nothing core-based without cores, the apply script groups and parses; and on
a real server the reload-level statements of the apply script make the findings go away."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import pglast
import pytest

from advisor import render
from advisor.engine import Facts, analyse
from advisor.pgserver import PgServer
from advisor.recommend import recommend, render_apply_script
from advisor.report import Recommendation, Report
from advisor.snapshot import HardwareFact, RoleDbSetting, Snapshot, facts_from_snapshot

SAMPLES = Path(__file__).parent.parent / "sample_snapshots"
SNAPSHOTS = sorted(SAMPLES.glob("*.json"))
RESTART = {"max_worker_processes", "max_connections", "superuser_reserved_connections"}
CORE_BASED = {
    "max_parallel_workers",
    "max_parallel_workers_per_gather",
    "max_parallel_maintenance_workers",
    "default_pool_size",
}
GiB = 1024**3
MiB = 1024**2


def report_for(snap: Snapshot) -> Report:
    return analyse(facts_from_snapshot(snap))


def by_name(report: Report) -> dict[str, Recommendation]:
    return {r.name: r for r in report.recommendations if r.kind in ("setting", "pgbouncer")}


def setting(snap: Snapshot, name: str) -> float:
    value = snap.setting(name)
    assert value is not None
    return float(value)


def sections(script: str) -> dict[str, list[str]]:
    """Statements of the apply script under each heading (needs restart / reload / session)."""
    out: dict[str, list[str]] = {}
    current = ""
    for line in script.splitlines():
        if line.startswith("-- needs restart"):
            current = "restart"
        elif line.startswith("-- reload"):
            current = "reload"
        elif line.startswith("-- session/role"):
            current = "session"
        elif line.startswith("-- no reload or restart"):
            current = "none"
        elif line.startswith("-- pooler"):
            current = "pooler"
        elif line and not line.startswith("--"):
            out.setdefault(current, []).append(line)
    return out


@pytest.mark.parametrize("path", SNAPSHOTS, ids=lambda p: p.stem)
def test_values_follow_the_formulas(path: Path) -> None:
    snap = Snapshot.load(path)
    report = report_for(snap)
    recs = by_name(report)
    cores = snap.hardware.cores
    assert cores is not None and snap.hardware.memory_bytes is not None
    fired = {f.rule for f in report.findings}

    pool = float(math.floor(cores))
    if "max_parallel_workers" in recs:
        assert float(recs["max_parallel_workers"].recommended) == pool
    else:
        assert setting(snap, "max_parallel_workers") == pool

    # PGTune's min(4, ceil(cores / 2)) from 4 cores up; below, PGTune sets nothing: default 2
    baseline = min(4, math.ceil(cores / 2)) if cores >= 4 else 2
    maint = min(baseline, pool)
    if "max_parallel_maintenance_workers" in recs:
        assert float(recs["max_parallel_maintenance_workers"].recommended) == maint
    else:
        assert setting(snap, "max_parallel_maintenance_workers") == maint

    gather = baseline
    peaks = snap.activity_peaks()
    assert peaks is not None
    if peaks.active >= 2 and peaks.active * (1 + gather) > cores:
        # never 0 server-wide: busy OLTP roles get 0 per role instead
        gather = max(1, min(gather, math.floor(cores / peaks.active) - 1))
        rec = recs["max_parallel_workers_per_gather"]
        assert f"{peaks.active} x (1 + {gather})" in rec.formula
        assert "CN007" in rec.because
    gather = min(gather, pool)
    if "max_parallel_workers_per_gather" in recs:
        assert float(recs["max_parallel_workers_per_gather"].recommended) == gather
    else:
        assert setting(snap, "max_parallel_workers_per_gather") == gather

    # The worker budget holds the pool, every other worker seen, and one slot of headroom.
    processes = float(
        recs["max_worker_processes"].recommended
        if "max_worker_processes" in recs
        else setting(snap, "max_worker_processes")
    )
    assert processes >= pool + sum(w.count for w in snap.bgworkers) + 1

    # work_mem: (RAM - shared_buffers) / ((connections + pool) x 2 x hash_mem_multiplier).
    if "work_mem" in recs:
        conns = setting(snap, "max_connections")
        if "max_connections" in recs:
            conns = max(conns, float(recs["max_connections"].recommended))
        shared = setting(snap, "shared_buffers") * 8192
        multiplier = setting(snap, "hash_mem_multiplier")
        budget = (snap.hardware.memory_bytes - shared) / ((conns + pool) * 2 * multiplier)
        value = int(recs["work_mem"].recommended.removesuffix("MB"))
        assert max(4, min(budget / MiB, 1024) / 1.5) <= value <= max(4, min(budget / MiB, 1024))
        current = setting(snap, "work_mem") * 1024
        # lowered above the budget, raised when the budget is >= 4x (2x for the default)
        raised = 2 if snap.settings["work_mem"].source == "default" else 4
        assert current > value * MiB or value * MiB >= raised * current
        assert recs["work_mem"].requires == "reload"
        assert "hash_mem_multiplier" in recs["work_mem"].formula

    for rec in report.recommendations:
        assert set(rec.because) <= fired
        if rec.name in CORE_BASED:
            assert f"{cores:g}" in rec.formula and "given with --cores" in rec.formula
        if rec.current is not None and rec.kind == "setting" and rec.name != "work_mem":
            assert float(rec.current) != float(rec.recommended)


def test_misbudgeted_server_gets_the_worker_and_connection_budget() -> None:
    snap = Snapshot.load(SAMPLES / "misbudgeted_pg18.json")
    recs = by_name(report_for(snap))
    mwp = recs["max_worker_processes"]
    # pool 2 + launcher 1 + 4 logical replication workers (a subscription runs) + 1 headroom
    assert mwp.recommended == "8" and mwp.requires == "restart"
    assert {"PQ003", "PQ004"} <= set(mwp.because)
    assert "a subscription runs" in mwp.formula
    assert recs["max_parallel_workers"].recommended == "2"
    assert set(recs["max_parallel_workers"].because) == {"PQ002", "PQ003", "PQ005"}
    assert recs["max_parallel_workers_per_gather"].recommended == "2"  # 2 cores: the default
    # One second of samples is too short to lower max_connections: clients may be missed.
    assert "max_connections" not in recs
    assert recs["default_pool_size"].recommended == "4"  # 2 x 2 cores + 0 spindles
    assert recs["superuser_reserved_connections"].recommended == "3"
    assert "work_mem" not in recs  # the budget is below the 4MB floor: connections are the fix


def test_max_connections_lowered_only_after_a_long_sample() -> None:
    snap = Snapshot.load(SAMPLES / "misbudgeted_pg18.json")
    samples = snap.activity_samples
    # The same observations spread over five minutes, as `--sample 300` would take them.
    spread = [
        x.model_copy(update={"t": i * 300.0 / (len(samples) - 1)}) for i, x in enumerate(samples)
    ]
    recs = by_name(report_for(snap.model_copy(update={"activity_samples": spread})))
    conns = recs["max_connections"]
    # no clients seen: max(20, ceil(0 x 1.25)) + 0 superuser slots + 0 reserved
    assert conns.recommended == "20" and conns.requires == "restart"
    assert set(conns.because) == {"CN002", "PQ006"} and "pooler" in conns.formula


def test_busy_server_never_below_the_observed_peak() -> None:
    snap = Snapshot.load(SAMPLES / "busy_pg18.json")
    recs = by_name(report_for(snap))
    conns = recs["max_connections"]
    # 19 client backends at peak: ceil(19 x 1.25) = 24, + 3 superuser slots
    assert conns.recommended == "27" and conns.because == ["CN001"]
    assert "peak client backends 19" in conns.formula


@pytest.mark.parametrize("path", SNAPSHOTS, ids=lambda p: p.stem)
def test_no_core_based_value_when_cores_unknown(path: Path) -> None:
    snap = Snapshot.load(path)
    blind = snap.model_copy(update={"hardware": HardwareFact()})
    report = report_for(blind)
    assert not {r.name for r in report.recommendations} & CORE_BASED
    for rec in report.recommendations:
        assert "cores" not in rec.formula.replace("cores_", "")
        assert "RAM" not in rec.formula or rec.name == "work_mem"
    # Nothing about memory either: work_mem needs RAM.
    assert "work_mem" not in {r.name for r in report.recommendations}


def test_no_snapshot_no_recommendations() -> None:
    assert recommend(Facts(), []) == []
    assert analyse(Facts()).recommendations == []


def test_role_overrides_are_capped_at_the_pool() -> None:
    snap = Snapshot.load(SAMPLES / "misbudgeted_pg18.json")  # 2 cores, per-gather 6, pool 4
    roles = [
        RoleDbSetting(
            role='ana"lyst', database=None, name="max_parallel_workers_per_gather", value="8"
        ),
        RoleDbSetting(role=None, database="dw", name="max_parallel_workers_per_gather", value="2"),
    ]
    report = report_for(snap.model_copy(update={"role_db_settings": roles}))
    per_role = [r for r in report.recommendations if r.kind == "role_setting"]
    assert len(per_role) == 1  # the database's 2 fits the pool of 2
    rec = per_role[0]
    assert rec.requires == "session" and rec.recommended == "2"
    assert rec.apply == 'ALTER ROLE "ana""lyst" SET max_parallel_workers_per_gather = 2;'
    server = by_name(report)["max_parallel_workers_per_gather"]
    assert "analytic roles" in server.formula
    script = render_apply_script(report.recommendations)
    assert sections(script)["session"] == [rec.apply]
    pglast.parse_sql(script)


def test_per_gather_below_four_cores_keeps_the_default() -> None:
    """PGTune emits no parallel settings below 4 cores, so 2 cores keep the built-in 2 (no
    recommendation at the default); from 4 cores on, PGTune's min(4, ceil(cores / 2))."""
    snap = Snapshot.load(SAMPLES / "defaults_2cores_pg18.json")
    recs = by_name(report_for(snap))
    assert snap.setting("max_parallel_workers_per_gather") == "2"
    assert "max_parallel_workers_per_gather" not in recs
    assert "max_parallel_maintenance_workers" not in recs
    big = by_name(report_for(Snapshot.load(SAMPLES / "defaults_64cores_pg18.json")))
    rec = big["max_parallel_workers_per_gather"]
    assert rec.recommended == "4"
    assert "min(4, ceil(64 / 2)) = 4 (PGTune)" in rec.formula


def _with_work_mem(snap: Snapshot, value_kb: str, source: str) -> Snapshot:
    fact = snap.settings["work_mem"].model_copy(
        update={"setting": value_kb, "source": source, "sourcefile": None}
    )
    return snap.model_copy(update={"settings": {**snap.settings, "work_mem": fact}})


def test_explicitly_low_work_mem_is_raised_to_the_budget() -> None:
    """work_mem 1MB set by the DBA on 2 cores and 64GB: the budget (160.3MB -> 128MB) is 128x
    it, so raise it whatever set it; half the recommended value set explicitly: left alone."""
    snap = Snapshot.load(SAMPLES / "defaults_2cores_pg18.json")
    rec = by_name(report_for(_with_work_mem(snap, "1024", "configuration file")))["work_mem"]
    assert rec.current == "1MB" and rec.requires == "reload"
    assert rec.recommended == "128MB" and "= 128MB; the budget counts" in rec.formula
    assert "current 1MB (source: configuration file); 128MB is 128x" in rec.formula
    assert "128x the current value; no spills seen" in rec.formula
    assert "hash_mem_multiplier" in rec.formula
    assert rec.apply == f"ALTER SYSTEM SET work_mem = '{rec.recommended}';"
    quiet = _with_work_mem(snap, str(64 * 1024), "configuration file")  # 2x below: enough
    assert "work_mem" not in by_name(report_for(quiet))
    # 1GB of RAM: the budget (863MB / 408 = 2.1MB) is below the 4MB floor: never raised to it
    small = snap.model_copy(
        update={"hardware": snap.hardware.model_copy(update={"memory_bytes": GiB})}
    )
    assert "work_mem" not in by_name(
        report_for(_with_work_mem(small, "1024", "configuration file"))
    )


def test_low_work_mem_of_a_role_is_raised_per_role() -> None:
    snap = Snapshot.load(SAMPLES / "defaults_2cores_pg18.json")
    roles = [
        RoleDbSetting(role="etl", database=None, name="work_mem", value="1MB"),
        RoleDbSetting(role=None, database="dw", name="work_mem", value="1GB"),  # high: fine
    ]
    report = report_for(snap.model_copy(update={"role_db_settings": roles}))
    per_role = [r for r in report.recommendations if r.name == "work_mem" and r.kind != "setting"]
    assert len(per_role) == 1
    rec = per_role[0]
    assert rec.kind == "role_setting" and rec.scope == "role etl" and rec.requires == "session"
    assert rec.apply == f"ALTER ROLE \"etl\" SET work_mem = '{rec.recommended}';"
    assert "role etl: work_mem 1MB" in rec.formula
    pglast.parse_sql(render_apply_script(report.recommendations))


@pytest.mark.parametrize("path", SNAPSHOTS, ids=lambda p: p.stem)
def test_apply_script_groups_and_parses(path: Path) -> None:
    report = report_for(Snapshot.load(path))
    script = render_apply_script(report.recommendations)
    assert script.startswith("-- pg-parallel-advisor apply script. Review")
    pglast.parse_sql(script)
    groups = sections(script)
    for rec in report.recommendations:
        if rec.kind in ("pgbouncer", "pgpool"):
            assert f"-- {rec.apply.splitlines()[0]}" in script.splitlines()
            continue
        assert rec.apply in groups[rec.requires]
        assert pglast.parse_sql(rec.apply)
        if rec.name in (
            "max_worker_processes",
            "max_connections",
            "superuser_reserved_connections",
        ):
            assert rec.requires == "restart"
        elif rec.kind == "setting":
            assert rec.requires == "reload"
    if groups.get("reload"):
        assert groups["reload"][-1] == "SELECT pg_reload_conf();"
    assert "pooler" not in groups  # pooler lines stay comments


@pytest.mark.parametrize(
    ("sample", "rule", "apply"),
    [
        ("underprovisioned_pg18", "PQ115", "ALTER TABLE public.big SET (parallel_workers = 7);"),
        ("catalog_pg18", "PQ114", "ALTER TABLE public.events RESET (parallel_workers);"),
        ("statements_pg15", "PQ113", "ALTER TABLE public.codes SET (parallel_workers = 2);"),
    ],
)
def test_table_options_follow_the_catalog_findings(sample: str, rule: str, apply: str) -> None:
    report = report_for(Snapshot.load(SAMPLES / f"{sample}.json"))
    (rec,) = [r for r in report.recommendations if r.kind == "table_option"]
    assert (rec.name, rec.requires, rec.because, rec.apply) == (
        "parallel_workers",
        "none",
        [rule],
        apply,
    )
    assert "size rule (knowledge §2.3)" in rec.formula
    if rule == "PQ115":  # 500,000 rows in 5,184 blocks, over the 1,024-block threshold
        assert "1 + floor(log3(5,184 / 1,024)) = 1 + floor(1.48) = 2 workers" in rec.formula
    script = render_apply_script(report.recommendations)
    assert sections(script)["none"] == [apply]
    pglast.parse_sql(script)


def test_quiet_snapshots_get_no_table_options() -> None:
    for name in ("underprovisioned_quiet_pg18", "catalog_quiet_pg18", "statements_fixed_pg18"):
        report = report_for(Snapshot.load(SAMPLES / f"{name}.json"))
        assert not [r for r in report.recommendations if r.kind == "table_option"], name


def test_random_page_cost_only_on_a_seen_ssd() -> None:
    snap = Snapshot.load(SAMPLES / "tuned_8cores_pg18.json")
    assert "random_page_cost" not in by_name(report_for(snap))  # storage unknown
    snap.hardware.details["storage"] = "rotational: sda/queue/rotational = 1 for /data"
    assert "random_page_cost" not in by_name(report_for(snap))
    snap.hardware.details["storage"] = "ssd: nvme0n1/queue/rotational = 0 for /data"
    rec = by_name(report_for(snap))["random_page_cost"]
    assert (rec.recommended, rec.requires, rec.apply) == (
        "1.1",
        "reload",
        "ALTER SYSTEM SET random_page_cost = 1.1;",
    )
    assert "nvme0n1/queue/rotational = 0" in rec.formula and "PGTune" in rec.formula


def test_storage_kind_from_sysfs(tmp_path: Path) -> None:
    from advisor.collect.hardware import rotational

    disk = tmp_path / "devices" / "nvme0n1"
    (disk / "nvme0n1p2").mkdir(parents=True)
    (disk / "queue").mkdir()
    (disk / "queue" / "rotational").write_text("0\n")
    (tmp_path / "dev" / "block").mkdir(parents=True)
    (tmp_path / "dev" / "block" / "259:2").symlink_to(disk / "nvme0n1p2")
    assert rotational(259, 2, tmp_path) == ("ssd", "nvme0n1/queue/rotational = 0")
    (disk / "queue" / "rotational").write_text("1\n")
    assert rotational(259, 2, tmp_path) == ("rotational", "nvme0n1/queue/rotational = 1")
    assert rotational(0, 41, tmp_path) is None  # overlay, tmpfs: no block device
    assert rotational(8, 1, tmp_path) is None


def test_json_report_carries_recommendations() -> None:
    snap = Snapshot.load(SAMPLES / "tuned_8cores_pg18.json")
    text = render.to_json(report_for(snap))
    assert '"recommendations": [' in text and '"formula": "max_parallel_workers_per_gather' in text


# -- a real server --------------------------------------------------------------------------------


@pytest.mark.server
def test_reload_statements_of_the_apply_script_quiet_the_findings(
    make_pg: Callable[..., PgServer],
) -> None:
    from advisor.collect import collect

    pg = make_pg(18, max_parallel_workers_per_gather=6, work_mem="64MB")
    with pg.connect(autocommit=True) as c:
        c.execute("ALTER SYSTEM SET max_parallel_workers = 4")
        c.execute("SELECT pg_reload_conf()")
    time.sleep(0.3)

    before = analyse(facts_from_snapshot(collect(pg.dsn, cores=2, memory=4 * GiB)))
    fired = {f.rule for f in before.findings}
    assert {"PQ002", "PQ005", "PQ006"} <= fired, sorted(fired)
    recs = by_name(before)
    assert recs["max_parallel_workers"].recommended == "2"
    # 2 cores: below PGTune's 4, so the built-in default 2 (capped at the pool of 2)
    assert recs["max_parallel_workers_per_gather"].recommended == "2"
    assert "below 4 cores PGTune sets no parallel settings" in (
        recs["max_parallel_workers_per_gather"].formula
    )
    # (4GB - 128MB) / ((100 + 2) x 2 x 2) = 9.7MB -> 8MB
    assert recs["work_mem"].recommended == "8MB"
    assert "PQ006" in recs["work_mem"].because

    reload = sections(render_apply_script(before.recommendations))["reload"]
    with pg.connect(autocommit=True) as c:
        for statement in reload:
            c.execute(statement)
    time.sleep(0.3)

    after = analyse(facts_from_snapshot(collect(pg.dsn, cores=2, memory=4 * GiB)))
    left = {f.rule for f in after.findings}
    assert not {"PQ002", "PQ005", "PQ006"} & left, sorted(left)
    assert not {"max_parallel_workers", "max_parallel_workers_per_gather", "work_mem"} & set(
        by_name(after)
    )


def _spill(pg: PgServer) -> None:
    """A 200,000-group hash aggregate over 1,000,000 rows: spills at 1MB, fits in 8MB; the
    connection is closed so pg_stat_database and pg_stat_statements get the temp files."""
    with pg.connect(autocommit=True) as c:
        c.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        c.execute("SET max_parallel_workers_per_gather = 0")
        c.execute(
            "SELECT g % 200000, sum(g) FROM generate_series(1, 1000000) g GROUP BY 1 "
            "ORDER BY 2 DESC LIMIT 5"
        )
    time.sleep(1.0)


@pytest.mark.server
def test_explicit_low_work_mem_that_spills_is_raised(make_pg: Callable[..., PgServer]) -> None:
    from advisor.collect import collect

    pg = make_pg(18, work_mem="1MB")
    with pg.connect(autocommit=True) as c:
        c.execute("CREATE ROLE etl")
        c.execute("ALTER ROLE etl SET work_mem = '2MB'")
    _spill(pg)
    snap = collect(pg.dsn, cores=2, memory=4 * GiB)
    assert snap.settings["work_mem"].source == "configuration file"
    report = analyse(facts_from_snapshot(snap))
    role = [r for r in report.recommendations if r.kind == "role_setting"]
    assert [(r.scope, r.current, r.apply) for r in role] == [
        ("role etl", "2MB", """ALTER ROLE "etl" SET work_mem = '8MB';""")
    ]
    rec = by_name(report)["work_mem"]
    # (4GB - 128MB) / ((100 + 2) x 2 x 2) = 9.7MB -> 8MB, 8x the 1MB set in postgresql.conf
    assert (rec.current, rec.recommended) == ("1MB", "8MB")
    assert "8MB is 8x the current value; spills seen:" in rec.formula
    assert "to temporary files (temp_blks_written)" in rec.formula
    assert "(temp_files, temp_bytes)" in rec.formula

    quiet = make_pg(18, work_mem="4MB")  # explicit and within 4x of the budget
    _spill(quiet)
    report = analyse(facts_from_snapshot(collect(quiet.dsn, cores=2, memory=4 * GiB)))
    assert "work_mem" not in {r.name for r in report.recommendations}


@pytest.mark.server
def test_cost_and_table_option_statements_quiet_their_findings(
    make_pg: Callable[..., PgServer],
) -> None:
    """PQ007 (server-wide costs far above the defaults) and PQ114 (parallel_workers = 0 on a
    large table): the apply script's reload and table sections make both go quiet."""
    from advisor.collect import collect

    pg = make_pg(15, parallel_setup_cost=100000, min_parallel_index_scan_size="8MB")
    with pg.connect(autocommit=True) as c:
        c.execute(
            "CREATE TABLE rec_big AS SELECT g AS id, repeat('x', 40) AS pad "
            "FROM generate_series(1, 200000) g"
        )
        c.execute("ALTER TABLE rec_big SET (parallel_workers = 0)")
    before = analyse(facts_from_snapshot(collect(pg.dsn, cores=8, memory=16 * GiB)))
    fired = {f.rule for f in before.findings}
    assert {"PQ007", "PQ114"} <= fired, sorted(fired)
    costs = {r.name: r for r in before.recommendations if "PQ007" in r.because}
    assert costs["parallel_setup_cost"].apply == "ALTER SYSTEM SET parallel_setup_cost = 1000;"
    assert costs["min_parallel_index_scan_size"].apply == (
        "ALTER SYSTEM SET min_parallel_index_scan_size = '512kB';"
    )
    assert "100x the default" in costs["parallel_setup_cost"].formula

    groups = sections(render_apply_script(before.recommendations))
    assert "ALTER TABLE public.rec_big RESET (parallel_workers);" in groups["none"]
    with pg.connect(autocommit=True) as c:
        for statement in (*groups["reload"], *groups["none"]):
            c.execute(statement)
    time.sleep(0.3)
    after = analyse(facts_from_snapshot(collect(pg.dsn, cores=8, memory=16 * GiB)))
    left = {f.rule for f in after.findings}
    assert not {"PQ007", "PQ114"} & left, sorted(left)
    assert not [r for r in after.recommendations if r.because in (["PQ007"], ["PQ114"])]
