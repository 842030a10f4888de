from __future__ import annotations

from collections.abc import Callable

import pytest

from advisor.pgserver import BinDir, PgServer


@pytest.mark.server
@pytest.mark.parametrize("fixture", ["pg18", "pg15"])
def test_server_runs_expected_major(fixture: str, request: pytest.FixtureRequest) -> None:
    pg: PgServer = request.getfixturevalue(fixture)
    with pg.connect(autocommit=True) as conn:
        row = conn.execute(
            "SELECT version(), current_setting('server_version_num')::int,"
            " current_setting('shared_preload_libraries')"
        ).fetchone()
    assert row is not None
    version, num, preload = row
    assert version.startswith(f"PostgreSQL {pg.major}.")
    assert num == pg.version_num and num // 10000 == pg.major
    assert preload == "pg_stat_statements"
    assert pg.dsn.startswith("host=127.0.0.1 port=")


@pytest.mark.server
def test_settings_applied(make_pg: Callable[..., PgServer]) -> None:
    pg = make_pg(15, max_parallel_workers=3, jit=False)
    with pg.connect() as conn:
        assert conn.execute("SHOW max_parallel_workers").fetchone() == ("3",)
        assert conn.execute("SHOW jit").fetchone() == ("off",)


@pytest.mark.server
def test_stop_cleans_up(pg_bins: Callable[[int], BinDir]) -> None:
    pg = PgServer(bin_dir=pg_bins(18))
    with pg:
        tmp = pg.tmpdir
        assert (pg.datadir / "postmaster.pid").exists()
    assert not tmp.exists()
    pg.stop()  # idempotent


def test_missing_server_fails_in_ci(
    pg_bins: Callable[[int], BinDir], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ADVISOR_PG_BIN_9", raising=False)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install postgresql-9"):
        pg_bins(9)
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="apt-get install postgresql-9"):
        pg_bins(9)
