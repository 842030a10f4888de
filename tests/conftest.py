"""Shared test helpers. Server policy: missing PostgreSQL skips locally but FAILS under CI=true."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping

import pytest

from advisor.pgserver import BinDir, PgNotFoundError, PgServer, SettingValue, find_binaries

PG_SETTINGS = {"shared_preload_libraries": "pg_stat_statements"}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_server(major: int) -> BinDir:
    """Binaries for `major`, or skip (locally) / fail (CI) with the install hint."""
    try:
        return find_binaries(major)
    except PgNotFoundError as exc:
        if in_ci():
            pytest.fail(f"CI=true and {exc}", pytrace=False)
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def pg_bins() -> Callable[[int], BinDir]:
    """`require_server` as a fixture, for tests that start servers themselves."""
    return require_server


@pytest.fixture(scope="session")
def pg18() -> Iterator[PgServer]:
    with PgServer(bin_dir=require_server(18), settings=PG_SETTINGS) as pg:
        yield pg


@pytest.fixture(scope="session")
def pg15() -> Iterator[PgServer]:
    with PgServer(bin_dir=require_server(15), settings=PG_SETTINGS) as pg:
        yield pg


@pytest.fixture
def make_pg() -> Iterator[Callable[..., PgServer]]:
    """Factory: `make_pg(18, max_parallel_workers=1)` -> started server, stopped after the test."""
    started: list[PgServer] = []

    def make(major: int, **settings: SettingValue) -> PgServer:
        conf: Mapping[str, SettingValue] = {**PG_SETTINGS, **settings}
        pg = PgServer(bin_dir=require_server(major), settings=conf).start()
        started.append(pg)
        return pg

    yield make
    for pg in started:
        pg.stop()
